//! `applies_to` against the catalog's filter ([`crate::read::EntityFilter`]):
//! the cases where the scorecard's own matcher used to disagree with it,
//! a table of both over the same entities, and a property over generated
//! entities and conditions.

use super::compile;
use crate::read::EntityFilter;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn card(applies_to: &Value) -> super::Definition {
    let text = format!("id: m\nlevels: [a]\nchecks: []\napplies_to: {applies_to}\n");
    compile("m.yaml", &text).unwrap_or_else(|e| panic!("{applies_to}: {e:?}"))
}

fn api(filter: &str) -> EntityFilter {
    EntityFilter::parse(&[filter.to_string()])
        .unwrap()
        .unwrap_or_else(|| panic!("{filter} selects everything"))
}

fn entity() -> Value {
    json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": "payments",
            "namespace": "default",
            "etag": "abc",
            "tags": ["java", "Payments"],
            "links": [{"url": "https://x", "type": "Runbook"}],
            "nothing": null,
        },
        "spec": {
            "type": "service",
            "lifecycle": "Production",
            "replicas": 3,
            "enabled": true,
            "matrix": [["a", "B"], ["c"]],
        },
        "relations": [{"type": "ownedBy", "targetRef": "group:default/Team-A"}],
    })
}

/// What the scorecard matcher got wrong before it used the catalog's
/// filter: Backstage's `path.item = true` rows for string items of an
/// array, present null fields, and the etag, which the filter never reads.
#[test]
fn applies_to_agrees_with_the_catalog_filter_on_array_items() {
    let e = entity();
    let cases = [
        (
            json!({"metadata.tags.java": true}),
            "metadata.tags.java=true",
            true,
        ),
        (
            json!({"metadata.tags.payments": null}),
            "metadata.tags.payments",
            true,
        ),
        (json!({"spec.matrix.b": "true"}), "spec.matrix.b=true", true),
        (
            json!({"metadata.tags.python": null}),
            "metadata.tags.python",
            false,
        ),
        (json!({"metadata.nothing": null}), "metadata.nothing", true),
        (json!({"metadata.etag": "abc"}), "metadata.etag=abc", false),
    ];
    for (applies_to, filter, want) in cases {
        assert_eq!(api(filter).matches(&e), want, "filter {filter}");
        assert_eq!(
            card(&applies_to).applies(&e),
            want,
            "applies_to {applies_to}"
        );
    }
}

#[test]
fn applies_to_and_the_catalog_filter_agree_on_a_table() {
    let mut other = entity();
    other["kind"] = json!("API");
    other["metadata"]["tags"] = json!([]);
    other["spec"]["lifecycle"] = json!("experimental");
    other["spec"]["enabled"] = json!(false);
    other["relations"] = json!([]);
    let entities = [entity(), other, json!({}), json!({"kind": "component"})];
    let table = [
        (json!({"kind": "component"}), "kind=component"),
        (json!({"KIND": "Component"}), "KIND=Component"),
        (
            json!({"kind": ["api", "component"]}),
            "kind=api,kind=component",
        ),
        (
            json!({"kind": "component", "spec.lifecycle": ["production", "experimental"]}),
            "kind=component,spec.lifecycle=production,spec.lifecycle=experimental",
        ),
        (
            json!({"metadata.tags": "payments"}),
            "metadata.tags=payments",
        ),
        (
            json!({"metadata.tags": ["python", "JAVA"]}),
            "metadata.tags=python,metadata.tags=java",
        ),
        (json!({"metadata.tags": null}), "metadata.tags"),
        (
            json!({"metadata.links.type": "runbook"}),
            "metadata.links.type=runbook",
        ),
        (json!({"spec.replicas": 3}), "spec.replicas=3"),
        (json!({"spec.enabled": true}), "spec.enabled=true"),
        (json!({"spec.enabled": false}), "spec.enabled=false"),
        (json!({"spec.matrix": "c"}), "spec.matrix=c"),
        (
            json!({"relations.ownedBy": "group:default/team-a"}),
            "relations.ownedby=group:default/team-a",
        ),
        (json!({"relations.ownedby": null}), "relations.ownedby"),
        (json!({"spec": null}), "spec"),
        (json!({"metadata.name": ""}), "metadata.name="),
    ];
    for e in &entities {
        for (applies_to, filter) in &table {
            assert_eq!(
                card(applies_to).applies(e),
                api(filter).matches(e),
                "applies_to {applies_to} / filter {filter} on {e}"
            );
        }
    }
}

#[test]
fn applies_to_errors_name_the_key() {
    let text = "id: x\nlevels: [a]\nchecks: []\napplies_to: {kind: component, spec.type: {a: b}}\n";
    let errors = compile("x.yaml", text).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, "x.yaml");
    assert!(
        errors[0].reason.starts_with("applies_to: `spec.type`: ")
            && errors[0].reason.contains("is not a scalar"),
        "{}",
        errors[0].reason
    );
    let text = "id: x\nlevels: [a]\nchecks: []\napplies_to: {\"\": component}\n";
    let errors = compile("x.yaml", text).unwrap_err();
    assert!(errors[0].reason.contains("a key is empty"), "{errors:?}");
}

// ------------------------------------------------------------- property

const KEYS: [&str; 10] = [
    "kind",
    "metadata.tags",
    "metadata.tags.java",
    "metadata.name",
    "metadata.links.type",
    "spec.lifecycle",
    "spec.replicas",
    "spec.enabled",
    "spec.owner",
    "relations.ownedby",
];
const WORDS: [&str; 10] = [
    "component",
    "API",
    "java",
    "Payments",
    "production",
    "true",
    "3",
    "runbook",
    "team-a",
    "group:default/team-a",
];

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(&WORDS[..]).prop_map(str::to_string)
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        word().prop_map(Value::from),
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0u8..5).prop_map(Value::from),
    ]
}

/// A leaf, a list of leaves (lists too), or a list of objects.
fn field() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => leaf(),
        2 => prop::collection::vec(leaf(), 0..4).prop_map(Value::from),
        1 => prop::collection::vec(prop::collection::vec(word(), 0..3), 0..3)
            .prop_map(|l| json!(l)),
        1 => prop::collection::vec(leaf(), 0..3)
            .prop_map(|l| Value::from(l.into_iter().map(|t| json!({"type": t})).collect::<Vec<_>>())),
    ]
}

fn entities() -> impl Strategy<Value = Value> {
    (
        prop::option::of(word()),
        prop::collection::btree_map(
            prop::sample::select(&["tags", "name", "links"][..]),
            field(),
            0..3,
        ),
        prop::collection::btree_map(
            prop::sample::select(&["lifecycle", "replicas", "enabled", "owner"][..]),
            field(),
            0..4,
        ),
        prop::collection::vec(
            (
                prop::sample::select(&["ownedBy", "OWNEDBY", "partOf"][..]),
                word(),
            ),
            0..3,
        ),
    )
        .prop_map(|(kind, metadata, spec, relations)| {
            let mut e = Map::new();
            if let Some(k) = kind {
                e.insert("kind".into(), k.into());
            }
            let obj = |m: std::collections::BTreeMap<&str, Value>| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            };
            e.insert("metadata".into(), obj(metadata));
            e.insert("spec".into(), obj(spec));
            e.insert(
                "relations".into(),
                relations
                    .into_iter()
                    .map(|(t, r)| json!({"type": t, "targetRef": r}))
                    .collect(),
            );
            Value::Object(e)
        })
}

/// Conditions: each key with no value (present), one value or a list.
fn conditions() -> impl Strategy<Value = Vec<(&'static str, Option<Vec<Value>>)>> {
    let value = prop_oneof![
        3 => word().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => (0u8..5).prop_map(Value::from),
    ];
    prop::collection::btree_map(
        prop::sample::select(&KEYS[..]),
        prop::option::of(prop::collection::vec(value, 1..3)),
        1..4,
    )
    .prop_map(|m| m.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn applies_to_is_the_catalog_filter(e in entities(), conds in conditions()) {
        let mut applies_to = Map::new();
        let mut filter = Vec::new();
        for (k, values) in &conds {
            match values {
                None => {
                    applies_to.insert(k.to_string(), Value::Null);
                    filter.push(k.to_string());
                }
                Some(vs) => {
                    let v = if vs.len() == 1 { vs[0].clone() } else { Value::from(vs.clone()) };
                    applies_to.insert(k.to_string(), v);
                    for v in vs {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        filter.push(format!("{k}={text}"));
                    }
                }
            }
        }
        let applies_to = Value::Object(applies_to);
        let filter = filter.join(",");
        prop_assert_eq!(
            card(&applies_to).applies(&e),
            api(&filter).matches(&e),
            "applies_to {} / filter {} on {}", applies_to, filter, e
        );
    }
}
