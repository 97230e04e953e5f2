//! The topics of the pipeline, described as types: name (which carries the
//! major version), what the messages are, and how the broker must keep
//! them. Topic creation, the topic check (`catalog topics`), the embedded
//! log and the projector's consumer all read these descriptions, so a
//! topic's settings are stated once.

/// query -> ingest: locations registered, unregistered or refreshed through
/// the API (the event store of registrations).
pub const LOCATIONS: &str = "catalog.locations.v1";
/// ingest -> processor: what every source location holds now (compacted).
pub const OBSERVATIONS: &str = "catalog.observations.v1";
/// processor -> projector: the entities each location yields (the event store).
pub const ENTITIES: &str = "catalog.entities.v1";
/// Facts about subjects (repositories, cloud resources) for scorecards.
pub const FACTS: &str = "catalog.facts.v1";
/// Scorecard definitions and exemptions (the event store of both).
pub const SCORECARDS: &str = "catalog.scorecards.v1";
/// What could not be processed, with the reason.
pub const DLQ: &str = "catalog.dlq.v1";

/// Every topic the pipeline uses, in flow order.
pub const ALL: [&str; 6] = [LOCATIONS, OBSERVATIONS, ENTITIES, FACTS, SCORECARDS, DLQ];

/// The message type a topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// [`crate::LocationCommand`]
    LocationCommand,
    /// [`crate::Observation`]
    Observation,
    /// [`crate::EntityEvent`]
    EntityEvent,
    /// [`crate::FactEvent`]
    FactEvent,
    /// [`crate::ScorecardEvent`]
    ScorecardEvent,
    /// [`crate::DeadLetter`]
    DeadLetter,
}

/// How the broker keeps a topic's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// `cleanup.policy=compact`: the latest message per key is kept forever;
    /// the topic is a snapshot of what every key holds now.
    Compacted,
    /// `cleanup.policy=delete` with `retention.ms=-1` and
    /// `retention.bytes=-1`: nothing is ever deleted (an event store that
    /// projections are rebuilt from).
    Forever,
    /// `cleanup.policy=delete` with the broker's retention: losing old
    /// messages loses nothing the catalog needs (dead letters).
    Broker,
}

/// One topic of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic {
    /// The topic's name (before any deployment prefix).
    pub name: &'static str,
    pub message: MessageType,
    pub retention: Retention,
}

impl Topic {
    /// The broker settings the topic is created with, as Kafka topic
    /// config keys and values.
    pub fn configs(&self) -> Vec<(&'static str, &'static str)> {
        match self.retention {
            Retention::Compacted => vec![("cleanup.policy", "compact")],
            Retention::Forever => vec![
                ("cleanup.policy", "delete"),
                ("retention.ms", "-1"),
                ("retention.bytes", "-1"),
            ],
            Retention::Broker => vec![("cleanup.policy", "delete")],
        }
    }

    /// The description of the topic called `name`, if the pipeline has one.
    pub fn named(name: &str) -> Option<&'static Topic> {
        SPECS.iter().find(|t| t.name == name)
    }
}

/// The descriptions of every topic, in flow order (as [`ALL`]).
pub const SPECS: [Topic; 6] = [
    Topic {
        name: LOCATIONS,
        message: MessageType::LocationCommand,
        retention: Retention::Forever,
    },
    Topic {
        name: OBSERVATIONS,
        message: MessageType::Observation,
        retention: Retention::Compacted,
    },
    Topic {
        name: ENTITIES,
        message: MessageType::EntityEvent,
        retention: Retention::Forever,
    },
    Topic {
        name: FACTS,
        message: MessageType::FactEvent,
        retention: Retention::Compacted,
    },
    Topic {
        name: SCORECARDS,
        message: MessageType::ScorecardEvent,
        retention: Retention::Forever,
    },
    Topic {
        name: DLQ,
        message: MessageType::DeadLetter,
        retention: Retention::Broker,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_cover_every_topic_once_in_flow_order() {
        let names: Vec<&str> = SPECS.iter().map(|t| t.name).collect();
        assert_eq!(names, ALL);
        for name in ALL {
            assert_eq!(Topic::named(name).map(|t| t.name), Some(name));
        }
        assert!(Topic::named("catalog.unknown.v1").is_none());
    }

    #[test]
    fn event_stores_are_never_compacted_nor_expired() {
        for name in [LOCATIONS, ENTITIES, SCORECARDS] {
            let t = Topic::named(name).unwrap();
            let configs = t.configs();
            assert!(configs.contains(&("cleanup.policy", "delete")), "{name}");
            assert!(configs.contains(&("retention.ms", "-1")), "{name}");
            assert!(configs.contains(&("retention.bytes", "-1")), "{name}");
        }
        for name in [OBSERVATIONS, FACTS] {
            let t = Topic::named(name).unwrap();
            assert_eq!(t.configs(), vec![("cleanup.policy", "compact")], "{name}");
        }
    }
}
