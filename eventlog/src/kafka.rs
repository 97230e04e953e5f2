//! The Kafka backend, over librdkafka.
//!
//! One idempotent producer (`acks=all`) per [`KafkaLog`], polled by its own
//! thread; delivery failures are counted by the producer context and
//! reported by the next [`EventLog::flush`]. Each reader is a
//! [`BaseConsumer`] of its own: a group member for
//! [`EventLog::subscribe`], a manually assigned consumer (with a throwaway
//! group id that never commits) for [`EventLog::assign`].
//!
//! Several catalogs (or parallel tests) share one cluster through a topic
//! prefix ([`KafkaLog::with_topic_prefix`]): stages name topics and groups
//! as in `proto::topics`, and this backend alone maps them to the broker's
//! names (`{prefix}{topic}`, `{prefix}{group}`), so records read back carry
//! the unprefixed name.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, DefaultConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, DeliveryResult, Message};
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::parts::{self, Assembler};
use crate::topics::{ExistingTopic, TopicReport, TopicRequirements, check_topic, creation_configs};
use crate::{EventLog, LogError, Reader, Record, Result};
use proto::topics::Topic;

/// Most records one [`Reader::poll`] returns.
const MAX_BATCH: usize = 1000;
/// Timeout of metadata and watermark requests.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `append` waits for room in a full producer queue.
const QUEUE_FULL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long dropping a [`KafkaLog`] waits for queued messages.
const DROP_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Delivery failures since the last flush.
#[derive(Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

/// Producer context: counts failed deliveries for [`EventLog::flush`].
#[derive(Default)]
struct DeliveryTracker {
    failures: Mutex<Failures>,
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            let text = format!(
                "{error} (topic {:?}, partition {})",
                message.topic(),
                message.partition()
            );
            tracing::warn!(error = %text, "kafka: delivery failed");
            let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
            failures.count += 1;
            failures.first.get_or_insert(text);
        }
    }
}

/// The event log on a Kafka cluster.
pub struct KafkaLog {
    brokers: String,
    extra: Vec<(String, String)>,
    /// Prepended to every topic and consumer group name on the broker.
    prefix: String,
    /// The producer's `message.max.bytes`.
    max_message_bytes: usize,
    producer: ThreadedProducer<DeliveryTracker>,
    partition_counts: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("brokers", &self.brokers)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl KafkaLog {
    /// Creates the producer for `brokers` (a bootstrap list). `extra` are
    /// librdkafka properties applied, after the defaults, to every client
    /// this log creates (producer, consumers, admin), e.g. security settings
    /// or `session.timeout.ms`. Connecting is lazy: this does not wait for
    /// the cluster.
    pub fn connect(brokers: &str, extra: &[(String, String)]) -> Result<Self> {
        let mut config = base_config(brokers, extra, &[]);
        for (key, value) in [
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
            ("message.max.bytes", "1000000"),
            // Java-compatible key hashing.
            ("partitioner", "murmur2_random"),
            // Topics are made by `ensure_topics`, never by a typo.
            ("allow.auto.create.topics", "false"),
        ] {
            config.set(key, value);
        }
        apply_extra(&mut config, extra);
        let max_message_bytes = config
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        let producer: ThreadedProducer<DeliveryTracker> =
            config.create_with_context(DeliveryTracker::default())?;
        Ok(Self {
            brokers: brokers.to_owned(),
            extra: extra.to_vec(),
            prefix: String::new(),
            max_message_bytes,
            producer,
            partition_counts: Mutex::default(),
        })
    }

    /// Queues one message, waiting (bounded) while the queue is full.
    fn send(
        &self,
        topic: &str,
        physical: &str,
        partition: Option<i32>,
        key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        let mut record = BaseRecord::to(physical).key(key).payload(value);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        let mut deadline = None;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    let deadline =
                        *deadline.get_or_insert_with(|| Instant::now() + QUEUE_FULL_TIMEOUT);
                    if Instant::now() >= deadline {
                        return Err(LogError::Timeout(
                            QUEUE_FULL_TIMEOUT,
                            format!("the producer queue stayed full (topic {topic:?})"),
                        ));
                    }
                    // Serve delivery reports so that the queue drains.
                    self.producer.poll(Duration::from_millis(10));
                    record = back;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                    return Err(too_large(topic, key, value, self.max_message_bytes));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Partitions of a broker topic, read once per process (adding
    /// partitions to a topic moves keys; the catalog never does).
    fn cached_partitions(&self, physical: &str) -> Result<u32> {
        let mut cache = self
            .partition_counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = cache.get(physical) {
            return Ok(*n);
        }
        let n = self.topic_partitions(physical)?;
        cache.insert(physical.to_owned(), n);
        Ok(n)
    }

    /// Names every topic and consumer group `{prefix}{name}` on the broker
    /// (`log.topic_prefix`), so that several catalogs share a cluster.
    #[must_use]
    pub fn with_topic_prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// The topic prefix (empty by default).
    pub fn topic_prefix(&self) -> &str {
        &self.prefix
    }

    /// The broker's name of `topic`.
    pub fn physical(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }

    /// Describes the pipeline's topics as they exist on the broker and
    /// checks them against `specs` and `req`; changes nothing.
    pub fn check_topics(
        &self,
        specs: &[Topic],
        req: &TopicRequirements,
        timeout: Duration,
    ) -> Result<TopicReport> {
        let names: Vec<String> = specs.iter().map(|s| self.physical(s.name)).collect();
        let existing = self.describe_topics(&names, timeout)?;
        let mut report = TopicReport::default();
        for (spec, name) in specs.iter().zip(&names) {
            match existing.get(name) {
                None => report.missing.push(name.clone()),
                Some(have) => {
                    let (problems, notes) = check_topic(name, spec, req, have);
                    if problems.is_empty() {
                        report.ok.push(name.clone());
                    }
                    report.problems.extend(problems);
                    report.notes.extend(notes);
                }
            }
        }
        Ok(report)
    }

    /// Creates the missing topics of `specs` (partitions, replication,
    /// retention and `min.insync.replicas` as described), waits until they
    /// have leaders, then checks every topic. Existing topics are never
    /// altered: a setting that would lose data is reported as a problem.
    pub fn apply_topics(
        &self,
        specs: &[Topic],
        req: &TopicRequirements,
        timeout: Duration,
    ) -> Result<TopicReport> {
        let deadline = Instant::now() + timeout;
        let before = self.check_topics(specs, req, timeout)?;
        if !before.missing.is_empty() {
            let mut new = Vec::new();
            for spec in specs {
                let name = self.physical(spec.name);
                if before.missing.contains(&name) {
                    new.push((name, creation_configs(spec, req)));
                }
            }
            let replication = req.replication_factor.map_or(-1, i32::from);
            self.create_physical(&new, req.partitions, replication, deadline)?;
        }
        // Right after creation (ours, or a peer's that raced us) a broker
        // may describe a topic before it has applied the topic's configs:
        // settle for a few seconds before calling anything a problem.
        let settle = Instant::now() + Duration::from_secs(15);
        let mut after = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let report = self.check_topics(specs, req, remaining.max(Duration::from_secs(1)))?;
            if report.problems.is_empty()
                || before.missing.is_empty()
                || Instant::now() >= settle.min(deadline)
            {
                break report;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        after.created = before.missing;
        after.ok.retain(|n| !after.created.contains(n));
        Ok(after)
    }

    /// Partition count, fewest replicas and effective configs of each
    /// existing topic among `names` (broker names).
    fn describe_topics(
        &self,
        names: &[String],
        timeout: Duration,
    ) -> Result<BTreeMap<String, ExistingTopic>> {
        let metadata = self.metadata(None, timeout)?;
        let mut out = BTreeMap::new();
        for t in metadata.topics() {
            if t.error().is_some() || !names.iter().any(|n| n == t.name()) {
                continue;
            }
            let replication = t
                .partitions()
                .iter()
                .map(|p| p.replicas().len())
                .min()
                .unwrap_or(0);
            out.insert(
                t.name().to_owned(),
                ExistingTopic {
                    partitions: t.partitions().len() as u32,
                    replication_factor: u16::try_from(replication).unwrap_or(u16::MAX),
                    configs: None,
                },
            );
        }
        if out.is_empty() {
            return Ok(out);
        }
        let admin: AdminClient<DefaultClientContext> =
            base_config(&self.brokers, &self.extra, &[]).create()?;
        let specifiers: Vec<ResourceSpecifier<'_>> =
            out.keys().map(|n| ResourceSpecifier::Topic(n)).collect();
        let options = AdminOptions::new().request_timeout(Some(timeout));
        match block_on(admin.describe_configs(&specifiers, &options)) {
            Ok(results) => {
                let mut described = Vec::new();
                for result in results {
                    match result {
                        Ok(resource) => {
                            let configs: BTreeMap<String, String> = resource
                                .entries
                                .iter()
                                .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                                .collect();
                            described.push(configs);
                        }
                        Err(code) => {
                            return Err(LogError::Other(format!(
                                "kafka: cannot describe topic configs: {code}"
                            )));
                        }
                    }
                }
                // Results come in request order.
                for (slot, configs) in out.values_mut().zip(described) {
                    slot.configs = Some(configs);
                }
            }
            Err(
                e @ KafkaError::AdminOp(
                    RDKafkaErrorCode::UnsupportedFeature
                    | RDKafkaErrorCode::UnsupportedVersion
                    | RDKafkaErrorCode::OperationTimedOut,
                ),
            ) => {
                tracing::warn!(error = %e, "kafka: the cluster cannot describe topic configs");
            }
            Err(e) => return Err(e.into()),
        }
        Ok(out)
    }

    /// Makes sure every `(name, partitions, compacted)` topic exists,
    /// creating the missing ones (`cleanup.policy=compact` for compacted
    /// ones, the broker's default replication factor) and waiting until
    /// they have leaders. Existing topics are left alone; a partition count
    /// different from the requested one is only logged.
    pub fn ensure_topics(&self, topics: &[(&str, u32, bool)], timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let metadata = self.metadata(None, timeout)?;
        let existing: HashMap<&str, usize> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name(), t.partitions().len()))
            .collect();
        for &(name, partitions, compacted) in topics {
            let name = self.physical(name);
            match existing.get(name.as_str()) {
                Some(&have) => {
                    if have != partitions as usize {
                        tracing::warn!(
                            topic = name,
                            have,
                            wanted = partitions,
                            "kafka: topic exists with a different partition count; keeping it"
                        );
                    }
                }
                None => {
                    let configs = if compacted {
                        vec![("cleanup.policy".to_owned(), "compact".to_owned())]
                    } else {
                        Vec::new()
                    };
                    self.create_physical(&[(name, configs)], partitions, -1, deadline)?;
                }
            }
        }
        Ok(())
    }

    /// Creates topics (broker names, with their configs), all with
    /// `partitions` and `replication` (-1: the broker's default), and waits
    /// until each has a leader for every partition. A topic that already
    /// exists is fine.
    fn create_physical(
        &self,
        topics: &[(String, Vec<(String, String)>)],
        partitions: u32,
        replication: i32,
        deadline: Instant,
    ) -> Result<()> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let count = i32::try_from(partitions)
            .map_err(|_| LogError::Other(format!("{partitions} partitions: too many")))?;
        let missing: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|(name, configs)| {
                let mut topic = NewTopic::new(name, count, TopicReplication::Fixed(replication));
                for (k, v) in configs {
                    topic = topic.set(k, v);
                }
                topic
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = missing.iter().map(|t| t.name).collect();
        tracing::info!(topics = ?names, partitions, replication, "kafka: creating topics");

        let admin: AdminClient<DefaultClientContext> =
            base_config(&self.brokers, &self.extra, &[]).create()?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let options = AdminOptions::new()
            .request_timeout(Some(remaining))
            .operation_timeout(Some(remaining));
        let results = block_on(admin.create_topics(&missing, &options)).map_err(|e| {
            LogError::Other(format!(
                "cannot create topic {}: {e}{}",
                names.join(", "),
                unsupported_hint(&e)
            ))
        })?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    let hint = if matches!(
                        code,
                        RDKafkaErrorCode::UnsupportedFeature | RDKafkaErrorCode::UnsupportedVersion
                    ) {
                        "; the cluster does not support CreateTopics, create the topic beforehand"
                    } else {
                        ""
                    };
                    return Err(LogError::Other(format!(
                        "cannot create topic {name:?}: {code}{hint}"
                    )));
                }
            }
        }

        // Wait until every created topic has a leader for each partition.
        for name in names {
            loop {
                let remaining = deadline.saturating_duration_since(Instant::now());
                let ready = self
                    .metadata(Some(name), remaining.max(Duration::from_millis(100)))
                    .ok()
                    .and_then(|md| {
                        md.topics().iter().find(|t| t.name() == name).map(|t| {
                            t.error().is_none()
                                && !t.partitions().is_empty()
                                && t.partitions().iter().all(|p| p.leader() >= 0)
                        })
                    })
                    .unwrap_or(false);
                if ready {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(LogError::Timeout(
                        timeout,
                        format!("topic {name:?} was created but has no leaders yet"),
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    fn metadata(&self, topic: Option<&str>, timeout: Duration) -> Result<Metadata> {
        Ok(self.producer.client().fetch_metadata(topic, timeout)?)
    }

    /// Partition count of `topic` (a broker name), retrying transient
    /// metadata errors.
    fn topic_partitions(&self, topic: &str) -> Result<u32> {
        let deadline = Instant::now() + METADATA_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let metadata = self.metadata(Some(topic), remaining)?;
            let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else {
                return Err(LogError::UnknownTopic(topic.to_owned()));
            };
            match entry.error().map(RDKafkaErrorCode::from) {
                None if !entry.partitions().is_empty() => {
                    return Ok(entry.partitions().len() as u32);
                }
                None | Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
                    return Err(LogError::UnknownTopic(topic.to_owned()));
                }
                Some(code) => {
                    if Instant::now() >= deadline {
                        return Err(LogError::Kafka(KafkaError::MetadataFetch(code)));
                    }
                    tracing::debug!(topic, %code, "kafka: transient metadata error, retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn consumer(&self, group: &str) -> Result<BaseConsumer> {
        let config = base_config(
            &self.brokers,
            &self.extra,
            &[
                ("group.id", group),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "earliest"),
                ("enable.partition.eof", "false"),
                ("allow.auto.create.topics", "false"),
            ],
        );
        Ok(config.create_with_context(DefaultConsumerContext)?)
    }
}

impl Drop for KafkaLog {
    fn drop(&mut self) {
        // The producer purges whatever is still queued when dropped: give
        // unflushed messages a chance first.
        if self.producer.in_flight_count() > 0
            && let Err(e) = self.producer.flush(DROP_FLUSH_TIMEOUT)
        {
            tracing::warn!(error = %e, "kafka: messages still queued when closing the log");
        }
    }
}

/// Config with the bootstrap list, `defaults`, then the caller's extras.
fn base_config(
    brokers: &str,
    extra: &[(String, String)],
    defaults: &[(&str, &str)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    apply_extra(&mut config, extra);
    config
}

fn apply_extra(config: &mut ClientConfig, extra: &[(String, String)]) {
    for (key, value) in extra {
        config.set(key, value);
    }
}

fn unsupported_hint(e: &KafkaError) -> &'static str {
    match e {
        KafkaError::AdminOp(
            RDKafkaErrorCode::UnsupportedFeature | RDKafkaErrorCode::UnsupportedVersion,
        ) => " (the cluster does not support CreateTopics; create the topic beforehand)",
        // A broker without a CreateTopics handler (librdkafka's mock
        // cluster) never answers.
        KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut) => {
            " (no answer to CreateTopics: the cluster may not support it, as librdkafka's \
             mock cluster does not; create the topic beforehand)"
        }
        _ => "",
    }
}

/// Runs a future to completion on this thread (the admin client's futures
/// are completed by its own polling thread, so no runtime is needed).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

fn to_i32_partition(topic: &str, partition: u32) -> Result<i32> {
    i32::try_from(partition).map_err(|_| LogError::UnknownPartition {
        topic: topic.to_owned(),
        partition,
    })
}

impl EventLog for KafkaLog {
    fn append(&self, topic: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let physical = self.physical(topic);
        if key.len() + parts::OVERHEAD > self.max_message_bytes {
            return Err(too_large(topic, key, value, self.max_message_bytes));
        }
        match parts::split(key, value, self.max_message_bytes) {
            None => self.send(topic, &physical, None, key, value),
            Some(pieces) => {
                // Parts and manifest go to the partition the default
                // partitioner picks for the key, in order.
                let partitions = self.cached_partitions(&physical)?;
                let partition = to_i32_partition(topic, parts::kafka_partition(key, partitions))?;
                for (k, v) in &pieces {
                    self.send(topic, &physical, Some(partition), k, v)?;
                }
                Ok(())
            }
        }
    }

    fn flush(&self, timeout: Duration) -> Result<()> {
        match self.producer.flush(timeout) {
            Ok(()) => {}
            Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {
                return Err(LogError::Timeout(
                    timeout,
                    format!(
                        "{} message(s) still waiting for delivery",
                        self.producer.in_flight_count()
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let mut failures = self
            .producer
            .context()
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Failures { count, first } = std::mem::take(&mut *failures);
        if count > 0 {
            return Err(LogError::Other(format!(
                "kafka: {count} message(s) failed delivery since the last flush; first: {}",
                first.unwrap_or_default()
            )));
        }
        Ok(())
    }

    fn partitions(&self, topic: &str) -> Result<u32> {
        self.topic_partitions(&self.physical(topic))
    }

    fn end_offsets(&self, topic: &str) -> Result<Vec<i64>> {
        let topic = &self.physical(topic);
        let partitions = self.topic_partitions(topic)?;
        let client = self.producer.client();
        (0..partitions)
            .map(|p| {
                let partition = to_i32_partition(topic, p)?;
                // A topic just created may not have its leaders known to
                // every broker yet: that settles within moments.
                let deadline = Instant::now() + METADATA_TIMEOUT;
                loop {
                    match client.fetch_watermarks(topic, partition, METADATA_TIMEOUT) {
                        Ok((_low, high)) => return Ok(high),
                        Err(KafkaError::MetadataFetch(
                            RDKafkaErrorCode::NotLeaderForPartition
                            | RDKafkaErrorCode::LeaderNotAvailable
                            | RDKafkaErrorCode::UnknownTopicOrPartition,
                        )) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            })
            .collect()
    }

    fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Reader>> {
        let physical = self.physical(topic);
        self.topic_partitions(&physical)?;
        let consumer = self.consumer(&self.physical(group))?;
        consumer.subscribe(&[&physical])?;
        Ok(Box::new(KafkaReader {
            consumer,
            topic: physical,
            logical: topic.to_owned(),
            group: true,
            pending_error: None,
            assembler: Assembler::default(),
        }))
    }

    fn assign(&self, logical: &str, starts: &[(u32, i64)]) -> Result<Box<dyn Reader>> {
        let physical = self.physical(logical);
        let topic = physical.as_str();
        let partitions = self.topic_partitions(topic)?;
        let mut list = TopicPartitionList::new();
        for &(partition, offset) in starts {
            if partition >= partitions {
                return Err(LogError::UnknownPartition {
                    topic: topic.to_owned(),
                    partition,
                });
            }
            if offset < 0 {
                return Err(LogError::Other(format!(
                    "kafka: cannot start {topic:?}/{partition} at offset {offset}"
                )));
            }
            list.add_partition_offset(
                topic,
                to_i32_partition(topic, partition)?,
                Offset::Offset(offset),
            )?;
        }
        let consumer = self.consumer(&throwaway_group())?;
        consumer.assign(&list)?;
        Ok(Box::new(KafkaReader {
            consumer,
            topic: physical.clone(),
            logical: logical.to_owned(),
            group: false,
            pending_error: None,
            assembler: Assembler::default(),
        }))
    }

    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("kafka:{}", self.brokers)
        } else {
            format!("kafka:{} (topic prefix {:?})", self.brokers, self.prefix)
        }
    }
}

/// A group id no one else uses, for assigned readers (librdkafka requires
/// one; it is never committed to).
fn throwaway_group() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "eventlog-assign-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Errors librdkafka recovers from by itself: logged, not returned.
fn is_transient(e: &KafkaError) -> bool {
    matches!(e, KafkaError::PartitionEOF(_))
        || matches!(
            e,
            KafkaError::MessageConsumption(
                RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::Resolve
                    | RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::NotCoordinator
                    | RDKafkaErrorCode::CoordinatorNotAvailable
                    | RDKafkaErrorCode::CoordinatorLoadInProgress
                    | RDKafkaErrorCode::LeaderNotAvailable
                    | RDKafkaErrorCode::NotLeaderForPartition
            )
        )
}

/// The error of a message the broker would refuse for its size.
fn too_large(topic: &str, key: &[u8], value: &[u8], limit: usize) -> LogError {
    LogError::TooLarge {
        topic: topic.to_owned(),
        key: String::from_utf8_lossy(&key[..key.len().min(200)]).into_owned(),
        bytes: key.len() + value.len(),
        limit,
    }
}

struct KafkaReader {
    consumer: BaseConsumer,
    /// The broker's name of the topic.
    topic: String,
    /// The name records carry (without the prefix).
    logical: String,
    /// A group member (commits) rather than an assigned reader.
    group: bool,
    /// An error met after some records were collected, returned by the
    /// next poll.
    pending_error: Option<KafkaError>,
    /// Reassembles messages sent in parts.
    assembler: Assembler,
}

fn to_record(message: &BorrowedMessage<'_>, logical: &str) -> Record {
    Record {
        topic: logical.to_owned(),
        partition: u32::try_from(message.partition()).unwrap_or_default(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec).unwrap_or_default(),
        value: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        timestamp_ms: message.timestamp().to_millis().unwrap_or_default(),
        next: message.offset() + 1,
    }
}

impl Reader for KafkaReader {
    fn positions(&mut self) -> Result<Vec<(u32, i64)>> {
        let assignment = self.consumer.assignment()?;
        let owned: Vec<i32> = assignment
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        self.assembler
            .retain_partitions(|p| owned.contains(&i32::try_from(p).unwrap_or(-1)));
        if assignment.count() == 0 {
            return Ok(Vec::new());
        }
        let positions = self.consumer.position()?;
        let mut out = BTreeMap::new();
        let mut unknown = TopicPartitionList::new();
        for element in positions.elements() {
            let partition = u32::try_from(element.partition()).unwrap_or_default();
            match element.offset() {
                Offset::Offset(o) => {
                    out.insert(partition, o);
                }
                _ => {
                    unknown.add_partition(&self.topic, element.partition());
                }
            }
        }
        if unknown.count() > 0 {
            let committed = if self.group {
                self.consumer
                    .committed_offsets(unknown.clone(), METADATA_TIMEOUT)
                    .ok()
            } else {
                None
            };
            for element in committed.as_ref().unwrap_or(&unknown).elements() {
                let partition = u32::try_from(element.partition()).unwrap_or_default();
                let offset = match element.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                };
                out.insert(partition, offset);
            }
        }
        Ok(out.into_iter().collect())
    }

    fn poll(&mut self, timeout: Duration) -> Result<Vec<Record>> {
        if let Some(e) = self.pending_error.take() {
            return Err(e.into());
        }
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        // Wait for the first message: `poll` also returns early after
        // serving a rebalance, so loop until the deadline.
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.consumer.poll(remaining) {
                Some(Ok(message)) => {
                    out.push(to_record(&message, &self.logical));
                    break;
                }
                Some(Err(e)) if is_transient(&e) => {
                    tracing::debug!(error = %e, topic = %self.topic, "kafka: consumer notice");
                }
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
            if Instant::now() >= deadline {
                return Ok(out);
            }
        }
        // Then take whatever else is ready.
        while out.len() < MAX_BATCH {
            match self.consumer.poll(Duration::ZERO) {
                Some(Ok(message)) => out.push(to_record(&message, &self.logical)),
                Some(Err(e)) if is_transient(&e) => {}
                Some(Err(e)) => {
                    self.pending_error = Some(e);
                    break;
                }
                None => break,
            }
        }
        Ok(out
            .into_iter()
            .filter_map(|r| self.assembler.accept(r))
            .collect())
    }

    fn commit(&mut self, offsets: &[(u32, i64)]) -> Result<()> {
        if !self.group || offsets.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for &(partition, offset) in offsets {
            list.add_partition_offset(
                &self.topic,
                to_i32_partition(&self.topic, partition)?,
                Offset::Offset(offset),
            )?;
        }
        self.consumer.commit(&list, CommitMode::Sync)?;
        Ok(())
    }
}
