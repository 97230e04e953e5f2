//! The event log every stage talks to, with its backends:
//!
//! - `kafka` (feature `kafka`): rdkafka, for every multi-process
//!   deployment, with topics as code ([`topics`]) and a topic prefix;
//! - `embedded` (feature `embedded`): a durable log kept in RocksDB (a
//!   column family per topic, key = partition + offset), for `catalog dev`
//!   and single-node installs;
//! - [`memory`]: in memory with fault injection, for the tests of every
//!   crate.
//!
//! Stages see only the [`EventLog`] and [`Reader`] traits. This crate knows
//! nothing of the catalog's messages: keys and values are bytes (it reads
//! only the topic descriptions of `proto::topics`, to create and check
//! topics). Consumer lag gauges live in [`lag`].
//!
//! The interface is synchronous on purpose: every stage runs its consume ->
//! transform -> produce loop on a thread of its own, librdkafka and RocksDB
//! are blocking libraries, and a blocking loop makes ordering and
//! back-pressure obvious.

#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod lag;
pub mod large;
pub mod memory;
pub mod parts;
pub mod topics;

use std::time::Duration;

/// One message read from a topic partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Append time in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The offset of this partition to resume from once this record (and
    /// every record of the partition before it) is processed: `offset + 1`,
    /// or earlier while a message sent in parts ([`parts`]) is half read.
    /// Consumers store or commit this, never `offset + 1`.
    pub next: i64,
}

/// Errors of either backend.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[cfg(feature = "kafka")]
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[cfg(feature = "embedded")]
    #[error("embedded log: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("partition {partition} of {topic:?} does not exist")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("timed out after {0:?}: {1}")]
    Timeout(Duration, String),
    #[error("embedded log: corrupt record at {0}")]
    Corrupt(String),
    #[error(
        "message of {bytes} bytes for topic {topic:?} (key {key:?}) exceeds the {limit}-byte \
         message limit"
    )]
    TooLarge {
        topic: String,
        key: String,
        bytes: usize,
        limit: usize,
    },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// The log: append keyed messages, list partitions and end offsets, and read.
pub trait EventLog: Send + Sync {
    /// Queues a message for `topic`; the partition is chosen from the key, so
    /// all messages with one key stay in order on one partition. Durable only
    /// after [`EventLog::flush`] returned.
    fn append(&self, topic: &str, key: &[u8], value: &[u8]) -> Result<()>;

    /// [`EventLog::append`] of a value the caller is done with. A backend
    /// that stores a value whole may keep its buffer rather than copy it
    /// (the embedded log frames it in place): the event of a 300k-user
    /// file is 184 MB, and its copy was held next to the original while
    /// RocksDB made two more. The default copies.
    fn append_owned(&self, topic: &str, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.append(topic, key, &value)
    }

    /// Waits until every message queued so far is durably stored.
    fn flush(&self, timeout: Duration) -> Result<()>;

    /// Number of partitions of `topic`.
    fn partitions(&self, topic: &str) -> Result<u32>;

    /// The next offset to be written, per partition (index = partition).
    fn end_offsets(&self, topic: &str) -> Result<Vec<i64>>;

    /// A reader that shares the partitions of `topic` with the other members
    /// of consumer group `group` (Kafka rebalances them; the embedded log has
    /// one member) and starts at the group's committed offsets, or at 0.
    fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Reader>>;

    /// A reader of the given partitions from the given offsets, with no
    /// group: the caller keeps its own offsets (the projector stores them
    /// with its state).
    fn assign(&self, topic: &str, starts: &[(u32, i64)]) -> Result<Box<dyn Reader>>;

    /// Which backend this is, for logs and `/readyz`.
    fn describe(&self) -> String;
}

/// Reads records in order per partition.
pub trait Reader: Send {
    /// Returns the next records (possibly from several partitions, each in
    /// order), waiting up to `timeout` when none are ready. An empty vector
    /// means nothing arrived in time.
    fn poll(&mut self, timeout: Duration) -> Result<Vec<Record>>;

    /// Commits, for a group reader, that everything before `next_offset`
    /// of each partition is done. A no-op for an assigned reader.
    fn commit(&mut self, offsets: &[(u32, i64)]) -> Result<()>;

    /// The partitions this reader owns now, each with the next offset it
    /// will return (for a group member that has read nothing of a
    /// partition yet: the group's committed offset, or 0). With the
    /// partitions' end offsets this is the reader's lag.
    fn positions(&mut self) -> Result<Vec<(u32, i64)>>;
}

/// Stable partitioner shared by the embedded backend (FNV-1a over the key).
/// Kafka uses its own (murmur2): the two need not agree, only be stable.
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(partitions.max(1))) as u32
}
