//! Consumer lag as Prometheus gauges, per stage, topic and partition:
//! `catalog_consumer_lag{stage, topic, partition}` = end offset - the next
//! offset the stage will read. An autoscaler (KEDA's Kafka trigger reads
//! the group's lag from the broker itself) or an alert sums it across
//! replicas: a partition a replica no longer owns is set back to 0 there,
//! so it is counted once, by its new owner.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::{EventLog, Reader};

/// The gauge's name.
pub const CONSUMER_LAG: &str = "catalog_consumer_lag";

/// Keeps one stage's lag gauges for one topic.
pub struct LagGauge {
    stage: &'static str,
    topic: String,
    every: Duration,
    last: Option<Instant>,
    owned: BTreeSet<u32>,
}

impl LagGauge {
    /// Gauges of `stage` reading `topic`, refreshed at most once a second.
    pub fn new(stage: &'static str, topic: &str) -> Self {
        metrics::describe_gauge!(
            CONSUMER_LAG,
            metrics::Unit::Count,
            "Messages between a stage's next read and the end of each partition it owns."
        );
        LagGauge {
            stage,
            topic: topic.to_owned(),
            every: Duration::from_secs(1),
            last: None,
            owned: BTreeSet::new(),
        }
    }

    /// Refreshes the gauges when a second has passed since the last
    /// refresh. Returns the total lag of the partitions this reader owns
    /// when it was refreshed. Failures (a broker away) leave the gauges as
    /// they were: lag unknown is not lag zero.
    pub fn tick(&mut self, log: &dyn EventLog, reader: &mut dyn Reader) -> Option<u64> {
        if self.last.is_some_and(|t| t.elapsed() < self.every) {
            return None;
        }
        self.last = Some(Instant::now());
        let positions = match reader.positions() {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, topic = %self.topic, "lag: positions unknown");
                return None;
            }
        };
        if positions.is_empty() && self.owned.is_empty() {
            return Some(0);
        }
        let ends = match log.end_offsets(&self.topic) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(error = %e, topic = %self.topic, "lag: end offsets unknown");
                return None;
            }
        };
        Some(self.set(&positions, &ends))
    }

    /// Sets the gauges from positions and end offsets; returns the total.
    pub fn set(&mut self, positions: &[(u32, i64)], ends: &[i64]) -> u64 {
        let now: BTreeSet<u32> = positions.iter().map(|(p, _)| *p).collect();
        for gone in self.owned.difference(&now) {
            self.gauge(*gone).set(0.0);
        }
        let mut total = 0u64;
        for &(partition, next) in positions {
            let end = ends.get(partition as usize).copied().unwrap_or(next);
            let lag = u64::try_from(end.saturating_sub(next)).unwrap_or(0);
            total += lag;
            self.gauge(partition).set(lag as f64);
        }
        self.owned = now;
        total
    }

    fn gauge(&self, partition: u32) -> metrics::Gauge {
        metrics::gauge!(
            CONSUMER_LAG,
            "stage" => self.stage,
            "topic" => self.topic.clone(),
            "partition" => partition.to_string()
        )
    }
}
