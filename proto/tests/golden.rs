//! Golden files pin the wire format: a diff here is a new version.
//! `UPDATE_GOLDEN=1 cargo test -p proto` rewrites them (then review the diff).

use chrono::{TimeZone, Utc};
use proto::envelope::{DecodeError, Versioned};
use proto::*;
use std::path::PathBuf;
use uuid::Uuid;

fn at(s: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + s, 0).unwrap()
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

fn sample_entity() -> Entity {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": "payments",
            "namespace": "default",
            "annotations": {"backstage.io/managed-by-location": "file:/org/payments.yaml"},
            "tags": ["java"]
        },
        "spec": {"type": "service", "lifecycle": "production", "owner": "group:default/pay"}
    }))
    .unwrap()
}

fn check<T: Versioned + PartialEq + std::fmt::Debug>(name: &str, value: &T) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let encoded: serde_json::Value = serde_json::from_slice(&value.encode()).unwrap();
    let pretty = serde_json::to_string_pretty(&encoded).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &pretty).unwrap();
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(
        pretty, golden,
        "{name}: wire format changed; that is a new version"
    );
    assert_eq!(&T::decode(golden.as_bytes()).unwrap(), value);
}

#[test]
fn observation_v1() {
    check(
        "observation.v1.json",
        &Observation {
            event_id: id(1),
            source: SourceId::new("demo"),
            observed_at: at(10),
            location: LocationKey::new("file:/org/payments.yaml"),
            origin: LocationKey::new("file:/org/catalog-info.yaml"),
            first_seen_at: at(0),
            content: ObservedContent::Present {
                content: Content::Utf8 {
                    text: "kind: Component\n".into(),
                },
            },
        },
    );
}

#[test]
fn observation_removed_v1() {
    check(
        "observation-removed.v1.json",
        &Observation {
            event_id: id(2),
            source: SourceId::new("demo"),
            observed_at: at(20),
            location: LocationKey::new("file:/org/payments.yaml"),
            origin: LocationKey::new("file:/org/catalog-info.yaml"),
            first_seen_at: at(0),
            content: ObservedContent::Removed,
        },
    );
}

#[test]
fn entity_event_v1() {
    let e = sample_entity();
    check(
        "entity-event.v1.json",
        &EntityEvent {
            event_id: id(3),
            source: SourceId::new("demo"),
            observed_at: at(10),
            location: LocationKey::new("file:/org/payments.yaml"),
            origin: LocationKey::new("file:/org/catalog-info.yaml"),
            first_seen_at: at(0),
            observation_id: id(1),
            outcome: LocationOutcome::Processed {
                entities: vec![ProcessedEntity {
                    relations: vec![
                        Relation {
                            source: e.entity_ref(),
                            relation_type: RelationType::OwnedBy,
                            target: EntityRef::new("group", "default", "pay"),
                        },
                        Relation {
                            source: EntityRef::new("group", "default", "pay"),
                            relation_type: RelationType::OwnerOf,
                            target: e.entity_ref(),
                        },
                    ],
                    entity: e,
                }],
                errors: vec![ProcessingError {
                    location: LocationKey::new("file:/org/payments.yaml"),
                    kind: ErrorKind::Validation,
                    message: "metadata.name \"Bad Name!\" is not a valid name".into(),
                    document: Some(1),
                    line: Some(14),
                    column: Some(9),
                    entity: Some("component:default/Bad Name!".into()),
                }],
            },
        },
    );
}

#[test]
fn dead_letter_v1() {
    check(
        "dead-letter.v1.json",
        &DeadLetter {
            event_id: id(4),
            stage: "processor".into(),
            at: at(30),
            topic: topics::OBSERVATIONS.into(),
            partition: 2,
            offset: 41,
            key: "file:/org/bomb.yaml".into(),
            reason: "YAML budget exceeded".into(),
            errors: vec![],
        },
    );
}

#[test]
fn unknown_version_is_distinct_from_malformed() {
    let v2 = br#"{"schema":"catalog.observation","version":2,"whatever":true}"#;
    assert!(matches!(
        Observation::decode(v2),
        Err(DecodeError::UnknownVersion { found: 2, .. })
    ));
    let other = br#"{"schema":"catalog.entity-event","version":1}"#;
    assert!(matches!(
        Observation::decode(other),
        Err(DecodeError::WrongSchema { .. })
    ));
    assert!(matches!(
        Observation::decode(b"not json"),
        Err(DecodeError::Malformed { .. })
    ));
}

#[test]
fn fact_event_v1() {
    check(
        "fact-event.v1.json",
        &FactEvent {
            event_id: id(5),
            source: SourceId::new("github-acme"),
            observed_at: at(30),
            subject: SubjectKey::github_repository("github.com", "Acme", "Payments"),
            state: FactState::Present {
                facts: Facts::GithubRepository(RepositoryFacts {
                    host: "github.com".into(),
                    owner: "acme".into(),
                    name: "payments".into(),
                    id: 1296269,
                    url: "https://github.com/acme/payments".into(),
                    default_branch: "main".into(),
                    branch: "main".into(),
                    visibility: "private".into(),
                    archived: false,
                    fork: false,
                    topics: vec!["java".into(), "payments".into()],
                    primary_language: Some("Java".into()),
                    languages: [("Java".to_string(), 120_000), ("Shell".to_string(), 900)]
                        .into_iter()
                        .collect(),
                    pushed_at: Some(at(25)),
                    files: [
                        ("CODEOWNERS".to_string(), ".github/CODEOWNERS".to_string()),
                        ("README".to_string(), "README.md".to_string()),
                    ]
                    .into_iter()
                    .collect(),
                    descriptors: vec![LocationKey::new(
                        "url:https://github.com/acme/payments/blob/main/catalog-info.yaml",
                    )],
                    branch_protection: Access::Granted(BranchProtection {
                        protected: true,
                        required_reviews: 2,
                        require_code_owner_reviews: true,
                        dismiss_stale_reviews: false,
                        enforce_admins: true,
                        required_status_checks: vec!["ci/build".into()],
                        allow_force_pushes: false,
                        allow_deletions: false,
                    }),
                    dependabot_alerts: Access::Denied {
                        reason: "Resource not accessible by integration".into(),
                    },
                    teams: Access::Granted(facts::RepoTeams {
                        teams: vec![
                            facts::RepoTeam {
                                slug: "payments".into(),
                                permission: "admin".into(),
                                group: "group:default/payments".into(),
                            },
                            facts::RepoTeam {
                                slug: "sre".into(),
                                permission: "pull".into(),
                                group: "group:default/sre".into(),
                            },
                        ],
                    }),
                }),
            },
        },
    );
}

/// Facts written before `teams` was read decode with the teams denied,
/// saying why, and everything else as written.
#[test]
fn fact_event_v1_without_teams_decodes() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/fact-event.v1.json");
    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let removed = old["state"]["facts"]
        .as_object_mut()
        .unwrap()
        .remove("teams");
    assert!(removed.is_some(), "the golden file has teams");
    let decoded = FactEvent::decode(&serde_json::to_vec(&old).unwrap()).unwrap();
    let FactState::Present {
        facts: Facts::GithubRepository(f),
    } = decoded.state
    else {
        panic!("not repository facts: {decoded:?}");
    };
    assert_eq!(
        f.teams,
        Access::Denied {
            reason: "not read by this version".into()
        }
    );
    assert_eq!(f.teams, facts::teams_not_read());
    assert_eq!(f.name, "payments");
    assert!(matches!(f.branch_protection, Access::Granted(_)));
}

#[test]
fn fact_event_cloud_resource_v1() {
    check(
        "fact-event-cloud-resource.v1.json",
        &FactEvent {
            event_id: id(7),
            source: SourceId::new("aws-prod"),
            observed_at: at(35),
            subject: SubjectKey::new(
                "aws:123456789012/eu-west-1/arn:aws:rds:eu-west-1:123456789012:db:orders",
            ),
            state: FactState::Present {
                facts: Facts::CloudResource(CloudResourceFacts {
                    provider: "aws".into(),
                    account: "123456789012".into(),
                    region: Some("eu-west-1".into()),
                    service: "rds".into(),
                    resource_type: "db".into(),
                    id: "arn:aws:rds:eu-west-1:123456789012:db:orders".into(),
                    tags: [("owner".to_string(), "team-payments".to_string())]
                        .into_iter()
                        .collect(),
                    encrypted: Some(true),
                    public: Some(false),
                    backups: Some(true),
                    runtime: None,
                    engine: Some("postgres".into()),
                    engine_version: Some("16.3".into()),
                    status: Some("available".into()),
                }),
            },
        },
    );
}

#[test]
fn fact_event_removed_v1() {
    check(
        "fact-event-removed.v1.json",
        &FactEvent {
            event_id: id(6),
            source: SourceId::new("github-acme"),
            observed_at: at(40),
            subject: SubjectKey::new("github:github.com/acme/payments"),
            state: FactState::Removed,
        },
    );
}

#[test]
fn scorecard_definitions_v1() {
    check(
        "scorecard-definitions.v1.json",
        &ScorecardEvent {
            event_id: id(7),
            source: SourceId::new("scorecards"),
            at: at(50),
            by: None,
            change: ScorecardChange::DefinitionsPublished {
                files: [(
                    "readiness.yaml".to_string(),
                    "id: readiness\ntitle: Readiness\nlevels: [bronze]\nchecks: []\n".to_string(),
                )]
                .into_iter()
                .collect(),
            },
        },
    );
}

#[test]
fn scorecard_exemption_v1() {
    let granted = ScorecardEvent {
        event_id: id(8),
        source: SourceId::new("api"),
        at: at(60),
        by: None,
        change: ScorecardChange::ExemptionGranted {
            exemption: Exemption {
                id: id(9),
                scorecard: "readiness".into(),
                entity: EntityRef::new("component", "default", "payments"),
                check: "runbook".into(),
                reason: "runbook moves to the new wiki this quarter".into(),
                author: "alice".into(),
                expires_at: Some(at(3600)),
            },
        },
    };
    assert_eq!(granted.key(), format!("exemption:{}", id(9)));
    check("scorecard-exemption.v1.json", &granted);
    // Written through the API: the token's subject. Optional, so the files
    // above (written before the field existed) still decode.
    check(
        "scorecard-exemption-attributed.v1.json",
        &ScorecardEvent {
            by: Some("release-bot".into()),
            ..granted.clone()
        },
    );
    check(
        "scorecard-exemption-revoked.v1.json",
        &ScorecardEvent {
            event_id: id(10),
            source: SourceId::new("api"),
            at: at(70),
            by: None,
            change: ScorecardChange::ExemptionRevoked {
                id: id(9),
                author: "bob".into(),
                reason: Some("runbook written".into()),
            },
        },
    );
}

#[test]
fn entity_deleted_v1() {
    check(
        "entity-event-deleted.v1.json",
        &EntityEvent {
            event_id: id(30),
            source: SourceId::new("api"),
            observed_at: at(40),
            location: LocationKey::new("file:/org/payments.yaml"),
            origin: LocationKey::new("file:/org/catalog-info.yaml"),
            first_seen_at: at(0),
            observation_id: id(30),
            outcome: LocationOutcome::EntityDeleted {
                entity: EntityRef::parse("component:default/payments", None, "default").unwrap(),
                by: Some("ci".into()),
            },
        },
    );
}

#[test]
fn location_commands_v1() {
    for (file, n, change) in [
        (
            "location-registered.v1.json",
            31,
            LocationChange::Registered,
        ),
        (
            "location-unregistered.v1.json",
            32,
            LocationChange::Unregistered,
        ),
        ("location-refresh.v1.json", 33, LocationChange::Refresh),
    ] {
        check(
            file,
            &LocationCommand {
                event_id: id(n),
                at: at(50),
                by: Some("ci".into()),
                location: LocationKey::new(
                    "url:https://github.com/acme/payments/blob/main/catalog-info.yaml",
                ),
                change,
            },
        );
    }
}

/// An entity event read with its entities left encoded is the event read
/// whole, for every golden entity event; what the whole read refuses, the
/// raw read refuses or leaves to the entity's own decode.
#[test]
fn an_entity_event_read_raw_is_the_event_read_whole() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for name in ["entity-event.v1.json", "entity-event-deleted.v1.json"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let whole = EntityEvent::decode(&bytes).unwrap();
        let raw = RawEntityEvent::decode(&bytes).unwrap();
        let count = match &whole.outcome {
            LocationOutcome::Processed { entities, .. } => entities.len(),
            _ => 0,
        };
        assert_eq!(raw.entities.len(), count, "{name}");
        if let LocationOutcome::Processed { entities, .. } = &whole.outcome {
            for (raw, pe) in raw.entities.iter().zip(entities) {
                assert_eq!(&RawEntityEvent::entity(raw).unwrap(), pe, "{name}");
            }
        }
        assert_eq!(raw.into_event().unwrap(), whole, "{name}");
    }
    let removed = EntityEvent {
        outcome: LocationOutcome::Removed,
        ..EntityEvent::decode(&std::fs::read(dir.join("entity-event.v1.json")).unwrap()).unwrap()
    };
    let bytes = removed.encode();
    let raw = RawEntityEvent::decode(&bytes).unwrap();
    assert!(raw.entities.is_empty());
    assert_eq!(raw.into_event().unwrap(), removed);

    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("entity-event.v1.json")).unwrap()).unwrap();
    let variant = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = golden.clone();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    // Refused by both reads, with the same kind of error.
    for (what, bytes) in [
        (
            "no errors",
            variant(&|v| {
                v["outcome"].as_object_mut().unwrap().remove("errors");
            }),
        ),
        (
            "no entities",
            variant(&|v| {
                v["outcome"].as_object_mut().unwrap().remove("entities");
            }),
        ),
        (
            "unknown state",
            variant(&|v| v["outcome"]["state"] = "gone".into()),
        ),
        (
            "no location",
            variant(&|v| {
                v.as_object_mut().unwrap().remove("location");
            }),
        ),
        (
            "another schema",
            variant(&|v| v["schema"] = "catalog.observation".into()),
        ),
    ] {
        let whole = EntityEvent::decode(&bytes).map(|_| ()).unwrap_err();
        let raw = RawEntityEvent::decode(&bytes).map(|_| ()).unwrap_err();
        assert_eq!(
            std::mem::discriminant(&whole),
            std::mem::discriminant(&raw),
            "{what}: {whole} / {raw}"
        );
    }
    let future = variant(&|v| v["version"] = 2.into());
    assert!(matches!(
        RawEntityEvent::decode(&future),
        Err(DecodeError::UnknownVersion { found: 2, .. })
    ));
    // An entity that does not decode: the whole read refuses the event, the
    // raw read refuses the entity.
    let bad = variant(&|v| v["outcome"]["entities"][0]["entity"]["kind"] = 5.into());
    assert!(EntityEvent::decode(&bad).is_err());
    let raw = RawEntityEvent::decode(&bad).unwrap();
    assert!(RawEntityEvent::entity(raw.entities[0]).is_err());
    assert!(raw.into_event().is_err());
}
