//! Unit tests of `process` (no I/O).

use crate::{ANNOTATION_LOCATION, ANNOTATION_ORIGIN_LOCATION, ProcessorConfig, process};
use chrono::{TimeZone, Utc};
use proto::{
    Content, EntityEvent, ErrorKind, LocationKey, LocationOutcome, Observation, ObservedContent,
    ProcessedEntity, ProcessingError, SourceId, Versioned,
};
use uuid::Uuid;

const LOCATION: &str = "file:/repo/catalog-info.yaml";
const ORIGIN: &str = "file:/repo/all.yaml";

fn observation(content: ObservedContent) -> Observation {
    Observation {
        event_id: Uuid::from_u128(7),
        source: SourceId::new("demo"),
        observed_at: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
        location: LocationKey::new(LOCATION),
        origin: LocationKey::new(ORIGIN),
        first_seen_at: Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
        content,
    }
}

fn text(t: &str) -> Observation {
    observation(ObservedContent::Present {
        content: Content::Utf8 {
            text: t.to_string(),
        },
    })
}

fn run_cfg(
    obs: &Observation,
    cfg: &ProcessorConfig,
) -> (Vec<ProcessedEntity>, Vec<ProcessingError>) {
    let event = process(obs, cfg);
    assert_encoded_alike(obs, cfg, &event);
    match event.outcome {
        LocationOutcome::Processed { entities, errors } => (entities, errors),
        other => panic!("unexpected {other:?}"),
    }
}

/// What the stage appends (the event encoded as its entities are
/// validated) decodes to what `process` gives, but for the event's id.
fn assert_encoded_alike(obs: &Observation, cfg: &ProcessorConfig, event: &EntityEvent) {
    let encoded = crate::process::process_encoded(obs, cfg);
    let mut decoded = EntityEvent::decode(&encoded.bytes).expect("the encoded event decodes");
    assert_eq!(decoded.event_id, encoded.event_id);
    decoded.event_id = event.event_id;
    assert_eq!(&decoded, event);
    let (entities, errors) = match &event.outcome {
        LocationOutcome::Processed { entities, errors } => (entities.len(), errors.clone()),
        _ => (0, Vec::new()),
    };
    assert_eq!(encoded.entities, entities);
    assert_eq!(encoded.errors, errors);
}

fn run(t: &str) -> (Vec<ProcessedEntity>, Vec<ProcessingError>) {
    run_cfg(&text(t), &ProcessorConfig::default())
}

/// The single error of a document that must fail.
fn only_error(t: &str) -> ProcessingError {
    let (entities, errors) = run(t);
    assert!(entities.is_empty(), "expected no entity, got {entities:?}");
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    errors.into_iter().next().unwrap()
}

fn accepts(t: &str) -> ProcessedEntity {
    let (entities, errors) = run(t);
    assert!(errors.is_empty(), "unexpected errors: {errors:#?}");
    assert_eq!(entities.len(), 1);
    entities.into_iter().next().unwrap()
}

fn component(metadata: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n{metadata}spec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
    )
}

fn named(name: &str) -> String {
    component(&format!("  name: {name:?}\n"))
}

fn rows(pe: &ProcessedEntity) -> Vec<String> {
    pe.relations
        .iter()
        .map(|r| format!("{} {} {}", r.source, r.relation_type.as_str(), r.target))
        .collect()
}

// ---------------------------------------------------------------------------
// Files and documents.

const MULTI: &str = "\
# The payments system
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: pay
  description: Takes money
  labels:
    tier: gold
  tags: [java, c++]
  links:
    - url: https://pay.example.com
      title: Dashboard
  custom:
    nested: [1, 2]
spec:
  type: service
  lifecycle: production
  owner: team-a
  system: payments
  providesApis: [pay-api]
  extraField: kept
---
apiVersion: backstage.io/v1beta1
kind: API
metadata:
  name: pay-api
  namespace: finance
spec:
  type: openapi
  lifecycle: production
  owner: group:default/team-a
  definition: |
    openapi: 3.0.0
---
---
apiVersion: backstage.io/v1alpha1
kind: System
metadata:
  name: payments
spec:
  owner: team-a
";

#[test]
fn a_valid_multi_document_file_yields_every_entity() {
    let (entities, errors) = run(MULTI);
    assert!(errors.is_empty(), "{errors:#?}");
    let refs: Vec<String> = entities
        .iter()
        .map(|e| e.entity.entity_ref().to_string())
        .collect();
    assert_eq!(
        refs,
        [
            "component:default/pay",
            "api:finance/pay-api",
            "system:default/payments"
        ]
    );
    let pay = &entities[0].entity;
    assert_eq!(pay.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(pay.metadata.description.as_deref(), Some("Takes money"));
    assert_eq!(pay.metadata.labels["tier"], "gold");
    assert_eq!(pay.metadata.tags, ["java", "c++"]);
    assert_eq!(pay.metadata.links[0].url, "https://pay.example.com");
    assert_eq!(pay.metadata.extra["custom"]["nested"][1], 2);
    assert_eq!(pay.spec.as_ref().unwrap()["extraField"], "kept");
    assert!(pay.metadata.uid.is_none() && pay.metadata.etag.is_none());
    assert!(
        entities[1].entity.spec.as_ref().unwrap()["definition"]
            .as_str()
            .unwrap()
            .starts_with("openapi")
    );
}

#[test]
fn managed_by_annotations_are_set_and_override_the_file() {
    let pe = accepts(&component(
        "  name: a\n  annotations:\n    backstage.io/managed-by-location: url:https://elsewhere\n    example.com/x: y\n",
    ));
    let ann = &pe.entity.metadata.annotations;
    assert_eq!(ann[ANNOTATION_LOCATION], LOCATION);
    assert_eq!(ann[ANNOTATION_ORIGIN_LOCATION], ORIGIN);
    assert_eq!(ann["example.com/x"], "y");
}

#[test]
fn uid_etag_relations_and_status_from_the_file_are_dropped() {
    let pe = accepts(&format!(
        "{}relations: []\nstatus: {{}}\n",
        component("  name: a\n  uid: abc\n  etag: def\n  generation: 3\n")
    ));
    assert!(pe.entity.metadata.uid.is_none());
    assert!(pe.entity.metadata.etag.is_none());
    assert!(pe.entity.relations.is_empty());
    assert_eq!(pe.entity.metadata.extra["generation"], 3);
}

#[test]
fn empty_and_null_documents_are_skipped_but_counted() {
    let (entities, errors) = run(&format!("---\n---\n~\n---\n# nothing\n---\n{}", named("x")));
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(entities.len(), 1);
    let (entities, errors) = run(&format!("---\n---\n{}---\nkind: [\n", named("x")));
    assert_eq!(entities.len(), 1);
    assert_eq!(errors[0].document, Some(2));
}

#[test]
fn one_bad_document_does_not_lose_the_good_ones() {
    let file = format!("{}---\n{}", named("Bad Name!"), named("good"));
    let (entities, errors) = run(&file);
    assert_eq!(entities.len(), 1);
    assert_eq!(entities[0].entity.metadata.name, "good");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, ErrorKind::Validation);
    assert_eq!(errors[0].document, Some(0));
    assert_eq!(errors[0].line, Some(4), "the line of metadata.name");
    assert_eq!(
        errors[0].entity.as_deref(),
        Some("component:default/Bad Name!")
    );
}

#[test]
fn broken_yaml_is_reported_with_its_line_and_the_rest_survives() {
    let file = format!(
        "{}---\nkind: [Component\nmetadata: x\n---\n{}",
        named("first"),
        named("last")
    );
    let (entities, errors) = run(&file);
    assert_eq!(entities.len(), 2);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = &errors[0];
    assert_eq!(e.kind, ErrorKind::Yaml);
    assert_eq!(e.document, Some(1));
    let line = e.line.unwrap();
    assert!((10..=11).contains(&line), "line {line}: {e:?}");
    assert!(e.column.unwrap() >= 1);
    assert!(e.message.contains(&format!("line {line}")), "{}", e.message);
}

#[test]
fn a_broken_single_document_reports_a_yaml_error() {
    let e = only_error(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: a\n name: b\n",
    );
    assert_eq!(e.kind, ErrorKind::Yaml);
    assert_eq!(e.line, Some(5));
    let e = only_error("a: 1\na: 2\n");
    assert_eq!(
        e.kind,
        ErrorKind::Yaml,
        "duplicate keys are an error: {e:?}"
    );
    assert_eq!(e.line, Some(2));
}

#[test]
fn duplicate_entities_in_one_location_keep_the_first() {
    let file = format!(
        "{}---\n{}",
        named("dup"),
        component("  name: DUP\n  description: second\n")
    );
    let (entities, errors) = run(&file);
    assert_eq!(entities.len(), 1);
    assert!(entities[0].entity.metadata.description.is_none());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, ErrorKind::Validation);
    assert_eq!(errors[0].document, Some(1));
    assert!(
        errors[0].message.contains("duplicate entity"),
        "{}",
        errors[0].message
    );
}

#[test]
fn documents_that_are_not_mappings_fail_the_envelope() {
    let e = only_error("- a\n- b\n");
    assert_eq!(e.kind, ErrorKind::Validation);
    assert_eq!(e.message, "Malformed envelope, <root> must be object");
    let e = only_error("just a string\n");
    assert_eq!(e.kind, ErrorKind::Validation);
}

// ---------------------------------------------------------------------------
// Content states and encodings.

#[test]
fn removed_passes_through() {
    let obs = observation(ObservedContent::Removed);
    let event = process(&obs, &ProcessorConfig::default());
    assert_encoded_alike(&obs, &ProcessorConfig::default(), &event);
    assert_eq!(event.outcome, LocationOutcome::Removed);
    assert_eq!(event.observation_id, obs.event_id);
    assert_eq!(event.location, obs.location);
    assert_eq!(event.origin, obs.origin);
    assert_eq!(event.source, obs.source);
    assert_eq!(event.observed_at, obs.observed_at);
    assert_eq!(event.first_seen_at, obs.first_seen_at);
    assert_ne!(event.event_id, obs.event_id);
    assert_eq!(event.event_id.get_version_num(), 7);
}

#[test]
fn too_large_and_unreadable_observations_become_errors() {
    let (entities, errors) = run_cfg(
        &observation(ObservedContent::TooLarge {
            size: 5_000_000,
            limit: 1_000_000,
        }),
        &ProcessorConfig::default(),
    );
    assert!(entities.is_empty());
    assert_eq!(errors[0].kind, ErrorKind::TooLarge);
    assert!(errors[0].message.contains("5000000"));
    let (_, errors) = run_cfg(
        &observation(ObservedContent::Unreadable {
            reason: "permission denied".into(),
        }),
        &ProcessorConfig::default(),
    );
    assert_eq!(errors[0].kind, ErrorKind::Unreadable);
    assert!(errors[0].message.contains("permission denied"));
    assert_eq!(errors[0].location.as_str(), LOCATION);
}

#[test]
fn content_over_the_configured_limit_is_too_large() {
    let cfg = ProcessorConfig {
        max_file_bytes: 64,
        ..ProcessorConfig::default()
    };
    let big = named(&"a".repeat(30));
    assert!(big.len() > 64);
    let (entities, errors) = run_cfg(&text(&big), &cfg);
    assert!(entities.is_empty());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, ErrorKind::TooLarge);
    let hex: String = big.bytes().map(|b| format!("{b:02x}")).collect();
    let obs = observation(ObservedContent::Present {
        content: Content::Hex { data: hex },
    });
    let (_, errors) = run_cfg(&obs, &cfg);
    assert_eq!(errors[0].kind, ErrorKind::TooLarge);
    // Exactly at the limit is fine.
    let cfg = ProcessorConfig {
        max_file_bytes: big.len() as u64,
        ..cfg
    };
    let (entities, errors) = run_cfg(&text(&big), &cfg);
    assert!(errors.is_empty() && entities.len() == 1);
}

#[test]
fn the_document_limit_applies_to_each_document() {
    let small = named("small");
    let big = component(&format!(
        "  name: big\n  description: {:?}\n",
        "d".repeat(500)
    ));
    let file = [small.as_str(), big.as_str(), named("after").as_str()].join("---\n");
    let cfg = ProcessorConfig {
        max_document_bytes: (big.len() - 10) as u64,
        ..ProcessorConfig::default()
    };
    assert!(
        file.len() > big.len(),
        "the file as a whole is over the limit"
    );
    let (entities, errors) = run_cfg(&text(&file), &cfg);
    let names: Vec<&str> = entities
        .iter()
        .map(|e| e.entity.metadata.name.as_str())
        .collect();
    assert_eq!(names, ["small", "after"]);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, ErrorKind::Budget);
    assert_eq!(errors[0].document, Some(1));
    assert_eq!(errors[0].line, Some(9));
    assert!(
        errors[0].message.contains("per-document limit"),
        "{}",
        errors[0].message
    );
}

#[test]
fn an_org_file_of_many_documents_is_read_whole_in_order() {
    // Tens of thousands of users in one file: far more YAML nodes than any
    // one document has, and no aliases.
    let users: Vec<String> = (0..30_000)
        .map(|i| {
            format!(
                "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: user-{i}\n  \
                 annotations:\n    hr/id: '{i}'\nspec:\n  profile:\n    displayName: User {i}\n    \
                 email: user-{i}@example.com\n  memberOf: [team-{}]\n",
                i % 700
            )
        })
        .collect();
    let mut file = users.join("---\n");
    // A duplicate late in the file is reported against the later document.
    file.push_str("---\n");
    file.push_str(&users[7]);
    let (entities, errors) = run(&file);
    assert_eq!(entities.len(), 30_000);
    for (i, pe) in entities.iter().enumerate().step_by(997) {
        assert_eq!(pe.entity.metadata.name, format!("user-{i}"));
    }
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].document, Some(30_000));
    assert!(errors[0].message.contains("document 7"));
}

#[test]
fn a_location_document_with_a_hundred_thousand_targets_is_accepted() {
    let mut doc = String::from(
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: all\nspec:\n  targets:\n",
    );
    for i in 0..100_000 {
        doc.push_str(&format!("    - ./repos/repository-{i}/catalog-info.yaml\n"));
    }
    let (entities, errors) = run(&doc);
    assert!(errors.is_empty(), "{errors:#?}");
    let targets = entities[0].entity.spec.as_ref().unwrap()["targets"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(targets, 100_000);
}

#[test]
fn hex_content_is_decoded_and_invalid_utf8_is_located() {
    let good: String = named("hexed").bytes().map(|b| format!("{b:02X}")).collect();
    let obs = observation(ObservedContent::Present {
        content: Content::Hex { data: good },
    });
    let (entities, errors) = run_cfg(&obs, &ProcessorConfig::default());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(entities[0].entity.metadata.name, "hexed");

    let mut bytes = b"kind: Component\nmetadata:\n  name: ab".to_vec();
    bytes.push(0xFF);
    bytes.extend_from_slice(b"cd\n");
    let data: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let obs = observation(ObservedContent::Present {
        content: Content::Hex { data },
    });
    let (entities, errors) = run_cfg(&obs, &ProcessorConfig::default());
    assert!(entities.is_empty());
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e.kind, ErrorKind::Encoding);
    assert_eq!(e.line, Some(3));
    assert_eq!(e.column, Some(11));
    assert!(e.message.contains("byte offset 36"), "{}", e.message);
    assert!(e.message.contains("0xFF"), "{}", e.message);

    let obs = observation(ObservedContent::Present {
        content: Content::Hex { data: "6g".into() },
    });
    let (_, errors) = run_cfg(&obs, &ProcessorConfig::default());
    assert_eq!(errors[0].kind, ErrorKind::Encoding);
    let obs = observation(ObservedContent::Present {
        content: Content::Hex { data: "616".into() },
    });
    let (_, errors) = run_cfg(&obs, &ProcessorConfig::default());
    assert_eq!(errors[0].kind, ErrorKind::Encoding);
}

#[test]
fn a_byte_order_mark_and_crlf_line_ends_are_fine() {
    let file = format!("\u{feff}{}", named("bom").replace('\n', "\r\n"));
    let pe = accepts(&file);
    assert_eq!(pe.entity.metadata.name, "bom");
}

// ---------------------------------------------------------------------------
// Budgets.

fn billion_laughs() -> String {
    let mut s = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for c in 'b'..='j' {
        s.push_str(&format!(
            "{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
        prev = c;
    }
    s
}

fn assert_budget_fast(file: &str) -> Vec<ProcessingError> {
    // The budgets bound the work; no wall-clock bound is asserted.
    let (entities, errors) = run(file);
    assert!(entities.is_empty());
    assert!(!errors.is_empty());
    assert!(
        errors.iter().all(|e| e.kind == ErrorKind::Budget),
        "{errors:#?}"
    );
    errors
}

#[test]
fn a_billion_laughs_bomb_is_a_budget_error() {
    let errors = assert_budget_fast(&billion_laughs());
    assert_eq!(errors.len(), 1);
    assert!(errors[0].line.is_some());
}

#[test]
fn many_alias_bombs_share_one_budget() {
    let bomb = billion_laughs();
    let file = vec![bomb.as_str(); 200].join("---\n");
    let errors = assert_budget_fast(&file);
    assert!(
        errors.len() < 200,
        "the location budget stops early: {}",
        errors.len()
    );
}

#[test]
fn deep_nesting_is_a_budget_error() {
    let flow = format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    assert_budget_fast(&flow);
    // 1,400 levels of block nesting fit in the 1 MiB limit.
    let mut block = String::new();
    for i in 0..1_400 {
        block.push_str(&" ".repeat(i));
        block.push_str("a:\n");
    }
    assert_budget_fast(&block);
    let mut seq = String::new();
    for i in 0..1_400 {
        seq.push_str(&" ".repeat(i));
        seq.push_str("- \n");
    }
    assert_budget_fast(&seq);
    let braces = format!("{}{}", "{a: ".repeat(5_000), "}".repeat(5_000));
    assert_budget_fast(&braces);
}

#[test]
fn aliases_that_nest_past_the_limit_are_a_budget_error() {
    let mut s = String::from("a: &x ");
    s.push_str(&"[".repeat(60));
    s.push_str(&"]".repeat(60));
    s.push_str("\nb: ");
    s.push_str(&"[".repeat(60));
    s.push_str("*x");
    s.push_str(&"]".repeat(60));
    s.push('\n');
    assert_budget_fast(&s);
}

#[test]
fn modest_anchors_and_merge_keys_work() {
    let pe = accepts(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: a\n  labels: &l\n    team: a\nspec: &s\n  type: service\n  lifecycle: production\n  owner: team-a\n  extra:\n    <<: *l\n    more: x\n",
    );
    assert_eq!(pe.entity.spec.as_ref().unwrap()["extra"]["team"], "a");
}

// ---------------------------------------------------------------------------
// apiVersion / kind.

#[test]
fn unknown_kinds_and_api_versions() {
    let e = only_error(
        "apiVersion: backstage.io/v1alpha1\nkind: Widget\nmetadata:\n  name: w\nspec: {}\n",
    );
    assert_eq!(e.kind, ErrorKind::UnknownKind);
    assert!(
        e.message.starts_with("Unsupported kind/apiVersion"),
        "{}",
        e.message
    );
    assert_eq!(e.line, Some(2));
    assert_eq!(e.entity.as_deref(), Some("widget:default/w"));
    let e = only_error(&named("x").replace("backstage.io/v1alpha1", "backstage.io/v2"));
    assert_eq!(e.kind, ErrorKind::UnknownKind);
    let e = only_error(&named("x").replace("kind: Component", "kind: component"));
    assert_eq!(e.kind, ErrorKind::UnknownKind);
    assert!(
        e.message.contains("did you mean \"Component\""),
        "{}",
        e.message
    );
    // A Template with the Backstage core apiVersion is not a Template.
    let e = only_error(
        "apiVersion: backstage.io/v1alpha1\nkind: Template\nmetadata:\n  name: t\nspec:\n  type: service\n  steps: []\n",
    );
    assert_eq!(e.kind, ErrorKind::UnknownKind);
}

#[test]
fn api_version_and_kind_formats() {
    let e = only_error(&named("x").replace("backstage.io/v1alpha1", "Backstage.io/v1"));
    assert_eq!(e.kind, ErrorKind::Validation);
    assert!(
        e.message
            .starts_with("\"apiVersion\" is not valid; expected a valid prefix and/or suffix"),
        "{}",
        e.message
    );
    let e = only_error(&named("x").replace("kind: Component", "kind: Com-ponent"));
    assert!(
        e.message.starts_with("\"kind\" is not valid"),
        "{}",
        e.message
    );
    let e = only_error("kind: Component\nmetadata:\n  name: x\n");
    assert_eq!(
        e.message,
        "Malformed envelope, <root> must have required property 'apiVersion'"
    );
    let e = only_error("apiVersion: backstage.io/v1alpha1\nkind: Component\n");
    assert_eq!(
        e.message,
        "Malformed envelope, <root> must have required property 'metadata'"
    );
    let e = only_error(&format!("{}spec2: {{}}\n", named("x")));
    assert!(
        e.message.contains("must NOT have additional properties"),
        "{}",
        e.message
    );
    assert!(e.message.contains("spec2"), "{}", e.message);
}

// ---------------------------------------------------------------------------
// metadata rules.

#[test]
fn metadata_name_rules() {
    accepts(&named(&"a".repeat(63)));
    accepts(&named("a"));
    accepts(&named("Ab-c_d.e9"));
    let e = only_error(&named("Bad Name!"));
    assert_eq!(
        e.message,
        "\"metadata.name\" is not valid; expected a string that is sequences of [a-zA-Z0-9] separated by any of [-_.], at most 63 characters in total but found \"Bad Name!\"."
    );
    assert_eq!(e.kind, ErrorKind::Validation);
    assert_eq!(e.line, Some(4));
    for bad in [
        "a".repeat(64),
        "trailing-".into(),
        "-leading".into(),
        "a__".into(),
        "".into(),
    ] {
        let e = only_error(&named(&bad));
        assert_eq!(e.kind, ErrorKind::Validation, "{bad}");
    }
    let e = only_error(&component("  name: 12\n"));
    assert_eq!(
        e.message,
        "Malformed envelope, /metadata/name must be string"
    );
    let e = only_error(&component("  title: x\n"));
    assert_eq!(
        e.message,
        "Malformed envelope, /metadata must have required property 'name'"
    );
}

#[test]
fn namespace_rules_and_default() {
    let pe = accepts(&named("a"));
    assert_eq!(pe.entity.metadata.namespace.as_deref(), Some("default"));
    let pe = accepts(&component("  name: a\n  namespace: team-ns-2\n"));
    assert_eq!(pe.entity.entity_ref().to_string(), "component:team-ns-2/a");
    let ok63 = "n".repeat(63);
    accepts(&component(&format!("  name: a\n  namespace: {ok63}\n")));
    for bad in [
        "Upper",
        "under_score",
        "trailing-",
        "dou--ble",
        "dot.ted",
        &"n".repeat(64),
    ] {
        let e = only_error(&component(&format!("  name: a\n  namespace: {bad:?}\n")));
        assert!(
            e.message.starts_with("\"metadata.namespace\" is not valid"),
            "{bad}: {}",
            e.message
        );
        assert_eq!(e.line, Some(5), "{bad}");
    }
    let e = only_error(&component("  name: a\n  namespace: \"\"\n"));
    assert_eq!(
        e.message,
        "Malformed envelope, /metadata/namespace must NOT have fewer than 1 characters"
    );
}

#[test]
fn label_rules() {
    accepts(&component(
        "  name: a\n  labels:\n    example.com/tier: gold\n    empty: \"\"\n",
    ));
    let e = only_error(&component(
        "  name: a\n  labels:\n    Example.com/tier: gold\n",
    ));
    assert!(
        e.message.starts_with(
            "\"labels.Example.com/tier\" is not valid; expected a valid prefix and/or suffix"
        ),
        "{}",
        e.message
    );
    assert_eq!(e.line, Some(6));
    let e = only_error(&component("  name: a\n  labels:\n    tier: not valid\n"));
    assert!(
        e.message.contains("but found \"not valid\""),
        "{}",
        e.message
    );
    let e = only_error(&component("  name: a\n  labels:\n    tier: 1\n"));
    assert_eq!(
        e.message,
        "Malformed envelope, /metadata/labels/tier must be string"
    );
    let e = only_error(&component("  name: a\n  labels:\n    a/b/c: x\n"));
    assert!(
        e.message.starts_with("\"labels.a/b/c\" is not valid"),
        "{}",
        e.message
    );
}

#[test]
fn annotation_rules() {
    accepts(&component(
        "  name: a\n  annotations:\n    github.com/project-slug: acme/pay\n    note: \"any string at all! 🎉\"\n",
    ));
    let e = only_error(&component("  name: a\n  annotations:\n    bad key: x\n"));
    assert!(
        e.message
            .starts_with("\"annotations.bad key\" is not valid"),
        "{}",
        e.message
    );
    let e = only_error(&component(
        "  name: a\n  annotations:\n    backstage.io/orphan: true\n",
    ));
    assert_eq!(
        e.message,
        "Malformed envelope, /metadata/annotations/backstage.io~1orphan must be string"
    );
}

#[test]
fn tag_rules() {
    accepts(&component(
        "  name: a\n  tags: [java, \"c#\", lang:go, a-b]\n",
    ));
    accepts(&component(&format!(
        "  name: a\n  tags: [{}]\n",
        "t".repeat(63)
    )));
    for bad in ["Java", "a_b", "a--b", "x-", &"t".repeat(64)] {
        let e = only_error(&component(&format!("  name: a\n  tags: [ok, {bad:?}]\n")));
        assert!(
            e.message.starts_with("\"tags.1\" is not valid"),
            "{bad}: {}",
            e.message
        );
    }
    let e = only_error(&component("  name: a\n  tags: java\n"));
    assert_eq!(
        e.message,
        "Malformed envelope, /metadata/tags must be array"
    );
}

#[test]
fn link_title_and_description_rules() {
    accepts(&component(
        "  name: a\n  title: Pay Service\n  description: money\n  links:\n    - url: https://x.example\n      title: X\n      icon: dashboard\n      type: admin\n",
    ));
    let e = only_error(&component("  name: a\n  links:\n    - title: no url\n"));
    assert_eq!(
        e.message,
        "Malformed envelope, /metadata/links/0 must have required property 'url'"
    );
    let e = only_error(&component("  name: a\n  links:\n    - url: not a url\n"));
    assert!(
        e.message
            .starts_with("\"links.0.url\" is not valid; expected a string that is a valid url"),
        "{}",
        e.message
    );
    let e = only_error(&component(
        "  name: a\n  links:\n    - url: https://x\n      title: \"  \"\n",
    ));
    assert!(
        e.message.starts_with("\"links.0.title\" is not valid"),
        "{}",
        e.message
    );
    let e = only_error(&component("  name: a\n  title: [1]\n"));
    assert_eq!(
        e.message,
        "Malformed envelope, /metadata/title must be string"
    );
    let e = only_error(&component("  name: a\n  description: 5\n"));
    assert_eq!(
        e.message,
        "Malformed envelope, /metadata/description must be string"
    );
}

#[test]
fn every_violation_of_a_stage_is_reported() {
    let (_, errors) = run(&component(
        "  name: \"bad name\"\n  namespace: BAD\n  tags: [X]\n",
    ));
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors
            .iter()
            .all(|e| e.kind == ErrorKind::Validation && e.document == Some(0))
    );
}

// ---------------------------------------------------------------------------
// Kind schemas.

fn doc(api_version: &str, kind: &str, spec: &str) -> String {
    format!("apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: x\nspec:\n{spec}")
}

fn core(kind: &str, spec: &str) -> String {
    doc("backstage.io/v1alpha1", kind, spec)
}

#[test]
fn component_spec() {
    let e = only_error(&core("Component", "  type: service\n  owner: a\n"));
    assert_eq!(
        e.message,
        "/spec must have required property 'lifecycle' - missingProperty: lifecycle"
    );
    assert_eq!(e.line, Some(5));
    let e = only_error(&core(
        "Component",
        "  type: service\n  lifecycle: production\n  owner: 7\n",
    ));
    assert_eq!(e.message, "/spec/owner must be string - type: string");
    assert_eq!(e.line, Some(8));
    let e = only_error(&core(
        "Component",
        "  type: \"\"\n  lifecycle: production\n  owner: a\n",
    ));
    assert_eq!(
        e.message,
        "/spec/type must NOT have fewer than 1 characters - limit: 1"
    );
    let e = only_error(&core(
        "Component",
        "  type: service\n  lifecycle: production\n  owner: a\n  providesApis: x\n",
    ));
    assert_eq!(e.message, "/spec/providesApis must be array - type: array");
    let e = only_error(&core(
        "Component",
        "  type: service\n  lifecycle: production\n  owner: a\n  dependsOn: [component:b, 3]\n",
    ));
    assert_eq!(e.message, "/spec/dependsOn/1 must be string - type: string");
    let e =
        only_error("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: x\n");
    assert_eq!(
        e.message,
        "<root> must have required property 'spec' - missingProperty: spec"
    );
    let e = only_error(&format!(
        "{}spec: 5\n",
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: x\n"
    ));
    assert_eq!(e.message, "Malformed envelope, /spec must be object");
}

#[test]
fn api_spec_requires_a_definition() {
    let e = only_error(&core(
        "API",
        "  type: openapi\n  lifecycle: production\n  owner: a\n",
    ));
    assert_eq!(
        e.message,
        "/spec must have required property 'definition' - missingProperty: definition"
    );
    // An unresolved `$text` placeholder stands in for the definition.
    accepts(&core(
        "API",
        "  type: openapi\n  lifecycle: production\n  owner: a\n  definition:\n    $text: ./openapi.yaml\n",
    ));
}

#[test]
fn resource_system_domain_specs() {
    accepts(&core("Resource", "  type: database\n  owner: a\n"));
    let e = only_error(&core("Resource", "  owner: a\n"));
    assert_eq!(
        e.message,
        "/spec must have required property 'type' - missingProperty: type"
    );
    accepts(&core("System", "  owner: a\n"));
    let e = only_error(&core("System", "  domain: d\n"));
    assert_eq!(
        e.message,
        "/spec must have required property 'owner' - missingProperty: owner"
    );
    accepts(&core("Domain", "  owner: a\n"));
    let e = only_error(&core("Domain", "  owner: a\n  subdomainOf: [x]\n"));
    assert_eq!(e.message, "/spec/subdomainOf must be string - type: string");
}

#[test]
fn group_and_user_specs() {
    accepts(&core("Group", "  type: team\n  children: []\n"));
    let e = only_error(&core("Group", "  type: team\n"));
    assert_eq!(
        e.message,
        "/spec must have required property 'children' - missingProperty: children"
    );
    let e = only_error(&core("Group", "  type: team\n  children: a\n"));
    assert_eq!(e.message, "/spec/children must be array - type: array");
    let e = only_error(&core(
        "Group",
        "  type: team\n  children: []\n  profile:\n    email: 5\n",
    ));
    assert_eq!(
        e.message,
        "/spec/profile/email must be string - type: string"
    );
    accepts(&core(
        "User",
        "  memberOf: []\n  profile:\n    displayName: Jane\n",
    ));
    let e = only_error(&core("User", "  profile:\n    displayName: Jane\n"));
    assert_eq!(
        e.message,
        "/spec must have required property 'memberOf' - missingProperty: memberOf"
    );
}

#[test]
fn location_spec() {
    accepts(&core(
        "Location",
        "  type: url\n  targets:\n    - ./a.yaml\n    - ./b.yaml\n",
    ));
    accepts(&core("Location", "  target: ./a.yaml\n"));
    let e = only_error(&core("Location", "  targets: ./a.yaml\n"));
    assert_eq!(e.message, "/spec/targets must be array - type: array");
}

#[test]
fn template_specs() {
    let v3 = "scaffolder.backstage.io/v1beta3";
    let spec = "  type: service\n  owner: team-a\n  parameters:\n    - title: One\n      properties: {}\n  steps:\n    - id: fetch\n      action: fetch:template\n      input:\n        url: ./skeleton\n      if: ${{ parameters.x }}\n  output:\n    links:\n      - title: Repo\n        url: https://x.example\n    text: done\n";
    let pe = accepts(&doc(v3, "Template", spec));
    assert_eq!(
        rows(&pe),
        vec![
            "group:default/team-a ownerOf template:default/x",
            "template:default/x ownedBy group:default/team-a",
        ]
    );
    accepts(&doc(
        "backstage.io/v1beta2",
        "Template",
        "  type: service\n  steps: []\n",
    ));
    let e = only_error(&doc(v3, "Template", "  type: service\n"));
    assert_eq!(
        e.message,
        "/spec must have required property 'steps' - missingProperty: steps"
    );
    let e = only_error(&doc(
        v3,
        "Template",
        "  type: service\n  steps:\n    - id: a\n",
    ));
    assert_eq!(
        e.message,
        "/spec/steps/0 must have required property 'action' - missingProperty: action"
    );
    let e = only_error(&doc(
        v3,
        "Template",
        "  type: service\n  steps: []\n  parameters: 5\n",
    ));
    assert_eq!(
        e.message,
        "/spec/parameters must match exactly one schema in oneOf - passingSchemas: null"
    );
    let e = only_error(&doc(
        v3,
        "Template",
        "  type: service\n  steps: []\n  output:\n    n: 5\n",
    ));
    assert_eq!(e.message, "/spec/output/n must be string - type: string");
}

// ---------------------------------------------------------------------------
// Relations.

#[test]
fn component_relations_in_both_directions() {
    let pe = accepts(&core(
        "Component",
        "  type: service\n  lifecycle: production\n  owner: team-a\n  system: sys\n  subcomponentOf: parent\n  providesApis: [api-p]\n  consumesApis: [other/api-c]\n  dependsOn: [resource:db]\n  dependencyOf: [component:ops/up]\n",
    ));
    assert_eq!(
        rows(&pe),
        vec![
            "api:default/api-p apiProvidedBy component:default/x",
            "api:other/api-c apiConsumedBy component:default/x",
            "component:default/parent hasPart component:default/x",
            "component:default/x ownedBy group:default/team-a",
            "component:default/x providesApi api:default/api-p",
            "component:default/x consumesApi api:other/api-c",
            "component:default/x dependsOn resource:default/db",
            "component:default/x dependencyOf component:ops/up",
            "component:default/x partOf component:default/parent",
            "component:default/x partOf system:default/sys",
            "component:ops/up dependsOn component:default/x",
            "group:default/team-a ownerOf component:default/x",
            "resource:default/db dependencyOf component:default/x",
            "system:default/sys hasPart component:default/x",
        ]
    );
}

#[test]
fn relations_default_to_the_entity_namespace() {
    let pe = accepts(&format!(
        "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: x\n  namespace: ns\nspec:\n{}",
        "  type: grpc\n  lifecycle: beta\n  owner: user:default/jane\n  system: sys\n  definition: x\n"
    ));
    assert_eq!(
        rows(&pe),
        vec![
            "api:ns/x ownedBy user:default/jane",
            "api:ns/x partOf system:ns/sys",
            "system:ns/sys hasPart api:ns/x",
            "user:default/jane ownerOf api:ns/x",
        ]
    );
}

#[test]
fn resource_system_domain_relations() {
    let pe = accepts(&core(
        "Resource",
        "  type: db\n  owner: team\n  dependsOn: [component:a]\n  dependencyOf: [component:b]\n  system: s\n",
    ));
    assert_eq!(
        rows(&pe),
        vec![
            "component:default/a dependencyOf resource:default/x",
            "component:default/b dependsOn resource:default/x",
            "group:default/team ownerOf resource:default/x",
            "resource:default/x ownedBy group:default/team",
            "resource:default/x dependsOn component:default/a",
            "resource:default/x dependencyOf component:default/b",
            "resource:default/x partOf system:default/s",
            "system:default/s hasPart resource:default/x",
        ]
    );
    let pe = accepts(&core("System", "  owner: team\n  domain: d\n"));
    assert_eq!(
        rows(&pe),
        vec![
            "domain:default/d hasPart system:default/x",
            "group:default/team ownerOf system:default/x",
            "system:default/x ownedBy group:default/team",
            "system:default/x partOf domain:default/d",
        ]
    );
    let pe = accepts(&core("Domain", "  owner: team\n  subdomainOf: top\n"));
    assert_eq!(
        rows(&pe),
        vec![
            "domain:default/top hasPart domain:default/x",
            "domain:default/x ownedBy group:default/team",
            "domain:default/x partOf domain:default/top",
            "group:default/team ownerOf domain:default/x",
        ]
    );
}

#[test]
fn group_and_user_relations() {
    let pe = accepts(&core(
        "Group",
        "  type: team\n  parent: org\n  children: [child]\n  members: [jane, user:ops/bob]\n",
    ));
    assert_eq!(
        rows(&pe),
        vec![
            "group:default/child childOf group:default/x",
            "group:default/org parentOf group:default/x",
            "group:default/x parentOf group:default/child",
            "group:default/x childOf group:default/org",
            "group:default/x hasMember user:default/jane",
            "group:default/x hasMember user:ops/bob",
            "user:default/jane memberOf group:default/x",
            "user:ops/bob memberOf group:default/x",
        ]
    );
    let pe = accepts(&core("User", "  memberOf: [team-a, team-a]\n"));
    assert_eq!(
        rows(&pe),
        vec![
            "group:default/team-a hasMember user:default/x",
            "user:default/x memberOf group:default/team-a",
        ],
        "deduplicated"
    );
    let pe = accepts(&core("Location", "  target: ./x.yaml\n"));
    assert!(pe.relations.is_empty());
}

#[test]
fn an_unparsable_reference_rejects_the_entity() {
    let e = only_error(&core(
        "Component",
        "  type: service\n  lifecycle: production\n  owner: a\n  dependsOn: [db]\n",
    ));
    assert_eq!(e.kind, ErrorKind::Validation);
    assert_eq!(
        e.message,
        "/spec/dependsOn/0: Entity reference \"db\" had missing or empty kind (e.g. did not start with \"component:\" or similar)"
    );
    assert_eq!(e.line, Some(9));
    let e = only_error(&core(
        "Component",
        "  type: service\n  lifecycle: production\n  owner: \"group:/x\"\n",
    ));
    assert!(e.message.contains("was not on the form"), "{}", e.message);
}

// ---------------------------------------------------------------------------
// Determinism.

#[test]
fn the_same_input_gives_the_same_outcome() {
    let file = format!("{MULTI}---\n{}---\nkind: [\n", named("Bad Name!"));
    let obs = text(&file);
    let cfg = ProcessorConfig::default();
    let a: EntityEvent = process(&obs, &cfg);
    let b: EntityEvent = process(&obs, &cfg);
    assert_ne!(a.event_id, b.event_id);
    assert_eq!(a.outcome, b.outcome);
    assert_eq!(
        serde_json::to_string(&a.outcome).unwrap(),
        serde_json::to_string(&b.outcome).unwrap()
    );
}

#[test]
fn errors_are_capped_per_location() {
    let file = vec![named("Bad Name!"); 150].join("---\n");
    let (_, errors) = run(&file);
    assert_eq!(errors.len(), crate::MAX_ERRORS_PER_LOCATION);
    assert!(errors.last().unwrap().message.starts_with("51 more errors"));
}

#[test]
fn config_defaults_and_unknown_fields() {
    let cfg: ProcessorConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(cfg.max_document_bytes, 64 * 1024 * 1024);
    assert_eq!(cfg.max_file_bytes, 256 * 1024 * 1024);
    assert_eq!(cfg.group, "catalog-processor");
    let cfg: ProcessorConfig = serde_json::from_str(r#"{"group":"g"}"#).unwrap();
    assert_eq!(cfg.group, "g");
    assert!(serde_json::from_str::<ProcessorConfig>(r#"{"nope":1}"#).is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn process_never_panics_on_arbitrary_text(s in any::<String>()) {
            let _ = process(&text(&s), &ProcessorConfig::default());
        }

        #[test]
        fn process_never_panics_on_yamlish_text(s in "[a-z:\\[\\]{}&*!|>#'\"\\- \n\t,.%@`~0-9]{0,200}") {
            let _ = process(&text(&s), &ProcessorConfig::default());
        }

        #[test]
        fn process_never_panics_on_arbitrary_hex(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let data: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let obs = observation(ObservedContent::Present { content: Content::Hex { data } });
            let _ = process(&obs, &ProcessorConfig::default());
        }

        #[test]
        fn mutated_entities_never_panic(cut in 0usize..400, insert in "[ :\\-\\[{\n]{0,3}") {
            let base = MULTI;
            let cut = cut.min(base.len());
            let cut = (0..=cut).rev().find(|i| base.is_char_boundary(*i)).unwrap_or(0);
            let s = format!("{}{}{}", &base[..cut], insert, &base[cut..]);
            let _ = process(&text(&s), &ProcessorConfig::default());
        }
    }
}
