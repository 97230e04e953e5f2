//! Topics as code: what the pipeline's topics must look like on a broker,
//! and the pure check of an existing topic against that.
//!
//! The descriptions come from `proto::topics` (name, message type,
//! retention); the deployment adds partitions, replication and
//! `min.insync.replicas` ([`TopicRequirements`]). A topic that exists with
//! settings that would lose data (an event store compacted or expiring,
//! fewer partitions or replicas than configured, a weaker
//! `min.insync.replicas`) is a [`TopicProblem`]; the services refuse to
//! start on one, and `catalog topics --check` lists them.

use std::collections::BTreeMap;

use proto::topics::{Retention, Topic};

/// What the deployment asks of every topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRequirements {
    /// Partitions of each topic (`log.partitions`).
    pub partitions: u32,
    /// Replicas of each partition (`log.replication_factor`); `None`: the
    /// broker's `default.replication.factor`, and any existing count passes.
    pub replication_factor: Option<u16>,
    /// `min.insync.replicas` of each topic (`log.min_insync_replicas`);
    /// `None`: the broker's default, and any existing value passes.
    pub min_insync_replicas: Option<u16>,
}

/// A topic as the broker describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExistingTopic {
    pub partitions: u32,
    /// The fewest replicas of any partition.
    pub replication_factor: u16,
    /// Effective topic configs (`cleanup.policy`, `retention.ms`, ...), or
    /// `None` when the cluster cannot describe them (librdkafka's mock
    /// cluster has no DescribeConfigs).
    pub configs: Option<BTreeMap<String, String>>,
}

/// One setting of one topic that would lose data or weaken guarantees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicProblem {
    /// The topic's name as the broker knows it (with any prefix).
    pub topic: String,
    /// The setting at fault (`cleanup.policy`, `partitions`, ...).
    pub setting: &'static str,
    /// What it is and why that is wrong.
    pub reason: String,
}

impl std::fmt::Display for TopicProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "topic {:?}: {}: {}",
            self.topic, self.setting, self.reason
        )
    }
}

/// What a check (and an apply) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicReport {
    /// Topics that exist and pass.
    pub ok: Vec<String>,
    /// Topics created by this call (apply only).
    pub created: Vec<String>,
    /// Topics that do not exist (check only; apply creates them).
    pub missing: Vec<String>,
    /// Settings that would lose data: the services refuse to start.
    pub problems: Vec<TopicProblem>,
    /// Worth knowing, harmless (more partitions than configured, settings
    /// that could not be read).
    pub notes: Vec<String>,
}

impl TopicReport {
    /// Whether every topic exists and passes.
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.problems.is_empty()
    }

    /// The problems as one message (one line each), for an error.
    pub fn problems_text(&self) -> String {
        self.problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The configs a topic is created with: the description's retention plus
/// the deployment's `min.insync.replicas`.
pub fn creation_configs(spec: &Topic, req: &TopicRequirements) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = spec
        .configs()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if let Some(isr) = req.min_insync_replicas {
        out.push(("min.insync.replicas".into(), isr.to_string()));
    }
    out
}

/// Checks one existing topic; `name` is its name on the broker.
/// Returns the problems and the harmless notes.
pub fn check_topic(
    name: &str,
    spec: &Topic,
    req: &TopicRequirements,
    have: &ExistingTopic,
) -> (Vec<TopicProblem>, Vec<String>) {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut problem = |setting: &'static str, reason: String| {
        problems.push(TopicProblem {
            topic: name.to_owned(),
            setting,
            reason,
        });
    };
    if have.partitions < req.partitions {
        problem(
            "partitions",
            format!(
                "has {} partition(s), fewer than the {} configured (log.partitions); add \
                 partitions or lower the setting",
                have.partitions, req.partitions
            ),
        );
    } else if have.partitions > req.partitions {
        notes.push(format!(
            "topic {name:?} has {} partitions, more than the {} configured: kept",
            have.partitions, req.partitions
        ));
    }
    if let Some(rf) = req.replication_factor
        && have.replication_factor < rf
    {
        problem(
            "replication.factor",
            format!(
                "has {} replica(s) per partition, fewer than the {rf} configured \
                 (log.replication_factor): a broker loss could lose events",
                have.replication_factor
            ),
        );
    }
    let Some(configs) = &have.configs else {
        notes.push(format!(
            "topic {name:?}: the cluster cannot describe topic configs; cleanup.policy, \
             retention and min.insync.replicas were not checked"
        ));
        return (problems, notes);
    };
    let get = |key: &str| configs.get(key).map(String::as_str);
    let policies: Vec<&str> = get("cleanup.policy")
        .unwrap_or("delete")
        .split(',')
        .map(str::trim)
        .collect();
    let compacts = policies.contains(&"compact");
    let deletes = policies.contains(&"delete");
    let unlimited = |key: &str| matches!(get(key), None | Some("-1"));
    match spec.retention {
        Retention::Compacted => {
            if !compacts {
                problem(
                    "cleanup.policy",
                    format!(
                        "is {:?}, must be \"compact\": this topic is a snapshot of what every \
                         key holds now, and time-based deletion would drop keys that did not \
                         change",
                        policies.join(",")
                    ),
                );
            } else if deletes && !unlimited("retention.ms") {
                problem(
                    "retention.ms",
                    format!(
                        "is {} with cleanup.policy \"compact,delete\": keys that did not change \
                         would expire; use \"compact\" alone or retention.ms=-1",
                        get("retention.ms").unwrap_or_default()
                    ),
                );
            }
        }
        Retention::Forever => {
            if compacts {
                problem(
                    "cleanup.policy",
                    format!(
                        "is {:?}: this topic is the event store and must keep every event \
                         (cleanup.policy=delete with retention.ms=-1), never compacted",
                        policies.join(",")
                    ),
                );
            }
            for key in ["retention.ms", "retention.bytes"] {
                if !unlimited(key) {
                    problem(
                        key,
                        format!(
                            "is {}: this topic is the event store and must keep every event \
                             ({key}=-1)",
                            get(key).unwrap_or_default()
                        ),
                    );
                }
            }
        }
        Retention::Broker => {}
    }
    if let Some(want) = req.min_insync_replicas {
        let have_isr = get("min.insync.replicas")
            .and_then(|v| v.parse::<u16>().ok())
            .unwrap_or(1);
        if have_isr < want {
            problem(
                "min.insync.replicas",
                format!(
                    "is {have_isr}, fewer than the {want} configured \
                     (log.min_insync_replicas): an acknowledged event could be lost with one \
                     broker"
                ),
            );
        }
    }
    (problems, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::topics;

    fn req() -> TopicRequirements {
        TopicRequirements {
            partitions: 4,
            replication_factor: Some(3),
            min_insync_replicas: Some(2),
        }
    }

    fn existing(configs: &[(&str, &str)]) -> ExistingTopic {
        ExistingTopic {
            partitions: 4,
            replication_factor: 3,
            configs: Some(
                configs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
        }
    }

    fn spec(name: &str) -> &'static Topic {
        Topic::named(name).unwrap()
    }

    fn settings(problems: &[TopicProblem]) -> Vec<&'static str> {
        problems.iter().map(|p| p.setting).collect()
    }

    #[test]
    fn what_creation_sets_passes_the_check() {
        for spec in &topics::SPECS {
            let configs = creation_configs(spec, &req());
            let have = ExistingTopic {
                partitions: 4,
                replication_factor: 3,
                configs: Some(configs.into_iter().collect()),
            };
            let (problems, notes) = check_topic(spec.name, spec, &req(), &have);
            assert!(problems.is_empty(), "{}: {problems:?}", spec.name);
            assert!(notes.is_empty(), "{}: {notes:?}", spec.name);
        }
    }

    #[test]
    fn a_compacted_or_expiring_event_store_is_refused_naming_topic_and_setting() {
        let entities = spec(topics::ENTITIES);
        let have = existing(&[
            ("cleanup.policy", "compact"),
            ("retention.ms", "-1"),
            ("retention.bytes", "-1"),
            ("min.insync.replicas", "2"),
        ]);
        let (problems, _) = check_topic("p.catalog.entities.v1", entities, &req(), &have);
        assert_eq!(settings(&problems), ["cleanup.policy"]);
        let text = problems[0].to_string();
        assert!(text.contains("p.catalog.entities.v1"), "{text}");
        assert!(text.contains("cleanup.policy"), "{text}");

        let have = existing(&[
            ("cleanup.policy", "delete"),
            ("retention.ms", "604800000"),
            ("retention.bytes", "-1"),
            ("min.insync.replicas", "2"),
        ]);
        let (problems, _) = check_topic("x", entities, &req(), &have);
        assert_eq!(settings(&problems), ["retention.ms"]);
        assert!(problems[0].reason.contains("604800000"));
    }

    #[test]
    fn a_snapshot_topic_must_compact() {
        let obs = spec(topics::OBSERVATIONS);
        let (problems, _) = check_topic(
            "o",
            obs,
            &req(),
            &existing(&[("cleanup.policy", "delete"), ("min.insync.replicas", "2")]),
        );
        assert_eq!(settings(&problems), ["cleanup.policy"]);
        let (problems, _) = check_topic(
            "o",
            obs,
            &req(),
            &existing(&[
                ("cleanup.policy", "compact,delete"),
                ("retention.ms", "1000"),
                ("min.insync.replicas", "2"),
            ]),
        );
        assert_eq!(settings(&problems), ["retention.ms"]);
        let (problems, _) = check_topic(
            "o",
            obs,
            &req(),
            &existing(&[
                ("cleanup.policy", "compact,delete"),
                ("retention.ms", "-1"),
                ("min.insync.replicas", "2"),
            ]),
        );
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn fewer_partitions_replicas_or_insync_replicas_are_problems_more_partitions_a_note() {
        let dlq = spec(topics::DLQ);
        let mut have = existing(&[("cleanup.policy", "delete"), ("min.insync.replicas", "1")]);
        have.partitions = 2;
        have.replication_factor = 1;
        let (problems, _) = check_topic("d", dlq, &req(), &have);
        assert_eq!(
            settings(&problems),
            ["partitions", "replication.factor", "min.insync.replicas"]
        );
        have.partitions = 8;
        have.replication_factor = 3;
        have.configs
            .as_mut()
            .unwrap()
            .insert("min.insync.replicas".into(), "2".into());
        let (problems, notes) = check_topic("d", dlq, &req(), &have);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(notes.len(), 1, "{notes:?}");
    }

    #[test]
    fn unconfigured_replication_accepts_what_the_broker_chose() {
        let req = TopicRequirements {
            partitions: 4,
            replication_factor: None,
            min_insync_replicas: None,
        };
        let mut have = existing(&[("cleanup.policy", "compact")]);
        have.replication_factor = 1;
        let (problems, _) = check_topic("f", spec(topics::FACTS), &req, &have);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn unreadable_configs_are_a_note_not_a_pass_or_a_failure() {
        let have = ExistingTopic {
            partitions: 4,
            replication_factor: 3,
            configs: None,
        };
        let (problems, notes) = check_topic("e", spec(topics::ENTITIES), &req(), &have);
        assert!(problems.is_empty());
        assert!(notes[0].contains("not checked"), "{notes:?}");
    }
}
