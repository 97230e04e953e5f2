//! Unit tests of the scorecard language ([`super::lang`]): paths,
//! operators, facts, relations, combinators, compilation errors and the
//! `applies_to` match, plus [`super::step::github_subject`].

use super::lang::{
    Check, Context, Definition, DefinitionError, EntityMatch, FactProvider, Outcome, Path, Rule,
    Segment, compile, compile_rule,
};
use super::step::github_subject;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

// ------------------------------------------------------------- fixtures

/// A context holding other entities by ref key and the facts of one subject.
#[derive(Default)]
struct TestCtx {
    entities: BTreeMap<String, Value>,
    /// The subject the entity links to (`None`: not linked).
    subject: Option<String>,
    /// The facts of that subject (`None`: none known yet).
    facts: Option<Value>,
    /// Every ref key asked for, in order.
    looked_up: Vec<String>,
}

impl TestCtx {
    fn with_entity(mut self, refkey: &str, entity: Value) -> Self {
        self.entities.insert(refkey.to_string(), entity);
        self
    }

    fn with_facts(mut self, subject: &str, facts: Option<Value>) -> Self {
        self.subject = Some(subject.to_string());
        self.facts = facts;
        self
    }
}

impl Context for TestCtx {
    fn entity(&mut self, refkey: &str) -> Option<Arc<Value>> {
        self.looked_up.push(refkey.to_string());
        self.entities.get(refkey).cloned().map(Arc::new)
    }

    fn facts(
        &mut self,
        _entity: &Value,
        provider: FactProvider,
    ) -> (Option<String>, Option<Arc<Value>>) {
        assert_eq!(provider, FactProvider::Github);
        match &self.subject {
            None => (None, None),
            Some(s) => (Some(s.clone()), self.facts.clone().map(Arc::new)),
        }
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

/// A definition with one check per rule (given as JSON, as YAML would be).
fn def_of(rules: &[Value]) -> Definition {
    let checks = rules
        .iter()
        .enumerate()
        .map(|(i, r)| Check {
            id: format!("c{i}"),
            title: format!("c{i}"),
            description: None,
            level: 0,
            weight: 1,
            rule: compile_rule(r, 0).unwrap_or_else(|e| panic!("rule {r} does not compile: {e}")),
        })
        .collect();
    Definition {
        id: "test".into(),
        title: "test".into(),
        description: None,
        applies_to: EntityMatch::default(),
        levels: vec!["bronze".into()],
        checks,
    }
}

fn eval_in(rule: Value, entity: &Value, ctx: &mut TestCtx) -> Outcome {
    let def = def_of(&[rule]);
    let mut ev = def.evaluate(entity, ctx, now());
    assert_eq!(ev.checks.len(), 1);
    ev.checks.remove(0)
}

fn eval(rule: Value, entity: &Value) -> Outcome {
    eval_in(rule, entity, &mut TestCtx::default())
}

fn assert_pass(o: &Outcome) {
    assert!(o.pass, "expected a pass, got {o:?}");
    assert_eq!(o.reason, None);
}

/// Asserts a failure whose reason contains every one of `parts`.
fn assert_fail(o: &Outcome, parts: &[&str]) {
    assert!(!o.pass, "expected a failure, got {o:?}");
    let reason = o.reason.as_deref().expect("a failure has a reason");
    for p in parts {
        assert!(reason.contains(p), "reason {reason:?} lacks {p:?}");
    }
}

fn component() -> Value {
    json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": "payments",
            "namespace": "default",
            "tags": ["java", "Payments"],
            "annotations": {
                "pagerduty.com/service-id": "PX12345",
                "github.com/project-slug": "acme/payments",
                "backstage.io/managed-by-location": "url:https://github.com/Acme/Payments/blob/main/catalog-info.yaml",
            },
            "links": [
                {"url": "https://grafana.example.com/d/1", "type": "dashboard"},
                {"url": "https://runbooks.example.com/pay", "type": "runbook"},
            ],
            "description": "",
            "emptyList": [],
            "nothing": null,
        },
        "spec": {
            "type": "service",
            "lifecycle": "Production",
            "owner": "team-a",
            "replicas": 3,
            "ratio": 0.75,
            "threshold": "12",
            "enabled": true,
            "items": ["first", "second"],
            "updatedAt": rfc3339(now() - Duration::days(10)),
            "createdAt": "not a date",
        },
        "relations": [
            {"type": "ownedBy", "targetRef": "group:default/team-a"},
            {"type": "partOf", "targetRef": "system:default/Payments"},
        ],
    })
}

fn facts_json() -> Value {
    json!({
        "kind": "github_repository",
        "branch_protection": {"access": "granted", "protected": true, "required_reviews": 2},
        "files": {"README": "README.md", "CODEOWNERS": null},
        "pushed_at": rfc3339(now() - Duration::days(10)),
    })
}

fn linked_ctx() -> TestCtx {
    TestCtx::default().with_facts("github:github.com/acme/payments", Some(facts_json()))
}

// ------------------------------------------------------------- exists

#[test]
fn exists_true_passes_on_present_values_and_reports_the_value() {
    let e = component();
    let o = eval(json!({"field": "spec.owner", "exists": true}), &e);
    assert_pass(&o);
    assert_eq!(o.value, Some(json!("team-a")));
    // Numbers, booleans and non-empty lists are present too.
    assert_pass(&eval(json!({"field": "spec.replicas", "exists": true}), &e));
    assert_pass(&eval(json!({"field": "spec.enabled", "exists": true}), &e));
    assert_pass(&eval(json!({"field": "spec.items", "exists": true}), &e));
}

#[test]
fn exists_true_fails_on_missing_empty_text_empty_list_and_null() {
    let e = component();
    for path in [
        "spec.missing",
        "metadata.description",
        "metadata.emptyList",
        "metadata.nothing",
    ] {
        let o = eval(json!({"field": path, "exists": true}), &e);
        assert_fail(&o, &[path, "exists", "it is missing"]);
        assert_eq!(o.value, None, "{path}");
    }
}

#[test]
fn exists_false_passes_only_when_absent() {
    let e = component();
    for path in [
        "spec.missing",
        "metadata.description",
        "metadata.emptyList",
        "metadata.nothing",
    ] {
        assert_pass(&eval(json!({"field": path, "exists": false}), &e));
    }
    let o = eval(json!({"field": "spec.owner", "exists": false}), &e);
    assert_fail(&o, &["spec.owner is absent", "found team-a"]);
    assert_eq!(o.value, Some(json!("team-a")));
}

#[test]
fn whitespace_only_text_counts_as_absent() {
    let e = json!({"spec": {"owner": "   "}});
    assert_fail(
        &eval(json!({"field": "spec.owner", "exists": true}), &e),
        &["it is missing"],
    );
}

// ------------------------------------------------------------- equals / in

#[test]
fn equals_compares_text_without_regard_to_case() {
    let e = component();
    assert_pass(&eval(
        json!({"field": "spec.lifecycle", "equals": "production"}),
        &e,
    ));
    assert_pass(&eval(
        json!({"field": "spec.lifecycle", "equals": "PRODUCTION"}),
        &e,
    ));
    assert_pass(&eval(json!({"field": "kind", "equals": "component"}), &e));
    let o = eval(
        json!({"field": "spec.lifecycle", "equals": "experimental"}),
        &e,
    );
    assert_fail(&o, &["spec.lifecycle = experimental", "found Production"]);
    assert_eq!(o.value, Some(json!("Production")));
}

#[test]
fn equals_handles_non_ascii_case() {
    let e = json!({"spec": {"owner": "ÉQUIPE"}});
    assert_pass(&eval(
        json!({"field": "spec.owner", "equals": "équipe"}),
        &e,
    ));
}

#[test]
fn equals_compares_numbers_by_value() {
    let e = component();
    assert_pass(&eval(json!({"field": "spec.replicas", "equals": 3}), &e));
    assert_pass(&eval(json!({"field": "spec.replicas", "equals": 3.0}), &e));
    assert_pass(&eval(json!({"field": "spec.ratio", "equals": 0.75}), &e));
    // Text holding a number equals that number.
    assert_pass(&eval(json!({"field": "spec.threshold", "equals": 12}), &e));
    assert_fail(
        &eval(json!({"field": "spec.replicas", "equals": 4}), &e),
        &["spec.replicas = 4", "found 3"],
    );
    assert_fail(
        &eval(json!({"field": "spec.owner", "equals": 3}), &e),
        &["found team-a"],
    );
}

#[test]
fn equals_booleans() {
    let e = component();
    assert_pass(&eval(json!({"field": "spec.enabled", "equals": true}), &e));
    assert_fail(
        &eval(json!({"field": "spec.enabled", "equals": false}), &e),
        &["found true"],
    );
    // Text "True" equals the boolean true.
    let t = json!({"spec": {"enabled": "True"}});
    assert_pass(&eval(json!({"field": "spec.enabled", "equals": true}), &t));
}

#[test]
fn equals_on_missing_value_fails_as_missing() {
    let o = eval(json!({"field": "spec.nope", "equals": "x"}), &component());
    assert_fail(&o, &["it is missing"]);
}

#[test]
fn equals_passes_when_any_value_of_a_list_matches() {
    let e = component();
    assert_pass(&eval(
        json!({"field": "metadata.tags[*]", "equals": "payments"}),
        &e,
    ));
    let o = eval(json!({"field": "metadata.tags[*]", "equals": "python"}), &e);
    assert_fail(&o, &["found [\"java\",\"Payments\"]"]);
}

#[test]
fn in_passes_when_the_value_is_one_of_the_list() {
    let e = component();
    assert_pass(&eval(
        json!({"field": "spec.lifecycle", "in": ["experimental", "production"]}),
        &e,
    ));
    assert_pass(&eval(
        json!({"field": "spec.replicas", "in": [1, 2, 3]}),
        &e,
    ));
    let o = eval(
        json!({"field": "spec.lifecycle", "in": ["experimental", "deprecated"]}),
        &e,
    );
    assert_fail(
        &o,
        &[
            "spec.lifecycle in [experimental, deprecated]",
            "found Production",
        ],
    );
    assert_fail(
        &eval(json!({"field": "spec.missing", "in": ["a"]}), &e),
        &["it is missing"],
    );
}

// ------------------------------------------------------------- matches

#[test]
fn matches_uses_a_regular_expression() {
    let e = component();
    assert_pass(&eval(
        json!({"field": "metadata.name", "matches": "^pay"}),
        &e,
    ));
    assert_pass(&eval(
        json!({"field": "metadata.annotations[\"pagerduty.com/service-id\"]", "matches": "^P[A-Z0-9]{6}$"}),
        &e,
    ));
    // Numbers and booleans match as text.
    assert_pass(&eval(
        json!({"field": "spec.replicas", "matches": "^3$"}),
        &e,
    ));
    assert_pass(&eval(
        json!({"field": "spec.enabled", "matches": "^true$"}),
        &e,
    ));
    let o = eval(
        json!({"field": "metadata.name", "matches": "^billing-"}),
        &e,
    );
    assert_fail(&o, &["metadata.name matches /^billing-/", "found payments"]);
    assert_fail(
        &eval(json!({"field": "spec.missing", "matches": "."}), &e),
        &["it is missing"],
    );
}

#[test]
fn matches_is_case_sensitive_unless_asked() {
    let e = component();
    assert!(!eval(json!({"field": "metadata.name", "matches": "^PAY"}), &e).pass);
    assert_pass(&eval(
        json!({"field": "metadata.name", "matches": "(?i)^PAY"}),
        &e,
    ));
}

#[test]
fn matches_never_matches_objects() {
    let e = json!({"spec": {"obj": {"a": "b"}}});
    assert!(!eval(json!({"field": "spec.obj", "matches": ".*"}), &e).pass);
}

// ------------------------------------------------------------- comparisons

#[test]
fn comparisons_pass_and_fail_on_numbers() {
    let e = component(); // replicas: 3
    let cases = [
        ("gt", 2.0, true),
        ("gt", 3.0, false),
        ("gte", 3.0, true),
        ("gte", 3.5, false),
        ("lt", 4.0, true),
        ("lt", 3.0, false),
        ("lte", 3.0, true),
        ("lte", 2.9, false),
    ];
    for (op, n, want) in cases {
        let o = eval(json!({"field": "spec.replicas", op: n}), &e);
        assert_eq!(o.pass, want, "replicas {op} {n}: {o:?}");
        if !want {
            assert_fail(&o, &["found 3"]);
        }
    }
}

#[test]
fn comparison_symbols_in_reasons() {
    let e = component();
    for (op, sym) in [
        ("gt", "> 10"),
        ("gte", ">= 10"),
        ("lt", "< 1"),
        ("lte", "<= 1"),
    ] {
        let n = if op.starts_with('g') { 10 } else { 1 };
        let o = eval(json!({"field": "spec.replicas", op: n}), &e);
        assert_fail(&o, &[&format!("spec.replicas {sym}")]);
    }
}

#[test]
fn comparisons_read_numeric_text_and_fractions() {
    let e = component();
    assert_pass(&eval(json!({"field": "spec.threshold", "gt": 11}), &e));
    assert!(!eval(json!({"field": "spec.threshold", "gt": 12}), &e).pass);
    assert_pass(&eval(json!({"field": "spec.ratio", "lt": 0.8}), &e));
    assert_pass(&eval(json!({"field": "spec.ratio", "gte": 0.75}), &e));
}

#[test]
fn comparison_on_a_non_number_fails_saying_so() {
    let e = component();
    let o = eval(json!({"field": "spec.owner", "gte": 2}), &e);
    assert_fail(&o, &["spec.owner >= 2", "found team-a, not a number"]);
    let o = eval(json!({"field": "spec.enabled", "lt": 2}), &e);
    assert_fail(&o, &["not a number"]);
    // A number that merely fails the comparison is not "not a number".
    let o = eval(json!({"field": "spec.replicas", "gt": 5}), &e);
    assert_fail(&o, &["found 3"]);
    assert!(!o.reason.unwrap().contains("not a number"));
    // Missing stays missing.
    let o = eval(json!({"field": "spec.missing", "gt": 5}), &e);
    assert_fail(&o, &["it is missing"]);
}

// ------------------------------------------------------------- within

#[test]
fn within_accepts_recent_timestamps_and_reports_the_next_change() {
    let e = component(); // updatedAt: 10 days before now
    let def = def_of(&[json!({"field": "spec.updatedAt", "within": "30d"})]);
    let ev = def.evaluate(&e, &mut TestCtx::default(), now());
    assert_pass(&ev.checks[0]);
    let stamp = now() - Duration::days(10);
    assert_eq!(ev.next_change, Some(stamp + Duration::days(30)));
    assert_eq!(ev.next_change, Some(now() + Duration::days(20)));
}

#[test]
fn within_rejects_old_timestamps_without_a_next_change() {
    let e = component();
    let def = def_of(&[json!({"field": "spec.updatedAt", "within": "5d"})]);
    let ev = def.evaluate(&e, &mut TestCtx::default(), now());
    assert_fail(&ev.checks[0], &["spec.updatedAt within 5d", "found"]);
    assert!(
        !ev.checks[0]
            .reason
            .as_ref()
            .unwrap()
            .contains("not a timestamp")
    );
    assert_eq!(ev.next_change, None);
}

#[test]
fn within_units() {
    let e = component(); // 10 days = 240 hours = 1 week + 3 days
    let cases = [
        ("2w", true),
        ("1w", false),
        ("241h", true),
        ("239h", false),
        ("14401m", true),
        ("14399m", false),
    ];
    for (d, want) in cases {
        let o = eval(json!({"field": "spec.updatedAt", "within": d}), &e);
        assert_eq!(o.pass, want, "within {d}: {o:?}");
    }
    // Seconds (at most 100000 of them): a timestamp one day old.
    let e = json!({"spec": {"at": rfc3339(now() - Duration::days(1))}});
    for (d, want) in [("86401s", true), ("86399s", false), ("25h", true)] {
        let o = eval(json!({"field": "spec.at", "within": d}), &e);
        assert_eq!(o.pass, want, "within {d}: {o:?}");
    }
}

#[test]
fn within_excludes_the_deadline_itself() {
    // Exactly `d` old: the deadline is now, and evaluating at it sees the
    // change (so a due-time re-evaluation at `next_change` flips the result).
    let e = json!({"spec": {"at": rfc3339(now() - Duration::days(1))}});
    let def = def_of(&[json!({"field": "spec.at", "within": "24h"})]);
    let ev = def.evaluate(&e, &mut TestCtx::default(), now());
    assert_fail(&ev.checks[0], &["spec.at within 1d"]);
    assert_eq!(ev.next_change, None);
    // A second earlier it passed, and named now as the next change.
    let ev = def.evaluate(&e, &mut TestCtx::default(), now() - Duration::seconds(1));
    assert_pass(&ev.checks[0]);
    assert_eq!(ev.next_change, Some(now()));
}

#[test]
fn within_takes_the_earliest_next_change_across_checks() {
    let e = component();
    let def = def_of(&[
        json!({"field": "spec.updatedAt", "within": "90d"}),
        json!({"field": "spec.updatedAt", "within": "30d"}),
        json!({"field": "spec.updatedAt", "within": "60d"}),
    ]);
    let ev = def.evaluate(&e, &mut TestCtx::default(), now());
    assert!(ev.checks.iter().all(|c| c.pass));
    assert_eq!(ev.next_change, Some(now() + Duration::days(20)));
}

#[test]
fn within_on_a_non_timestamp_fails_saying_so() {
    let e = component();
    let o = eval(json!({"field": "spec.createdAt", "within": "30d"}), &e);
    assert_fail(&o, &["found not a date, not a timestamp"]);
    let o = eval(json!({"field": "spec.replicas", "within": "30d"}), &e);
    assert_fail(&o, &["not a timestamp"]);
}

#[test]
fn within_accepts_other_offsets() {
    // 2024-05-30T14:00:00+02:00 is 2024-05-30T12:00Z, two days before now.
    let e = json!({"spec": {"at": "2024-05-30T14:00:00+02:00"}});
    let def = def_of(&[json!({"field": "spec.at", "within": "3d"})]);
    let ev = def.evaluate(&e, &mut TestCtx::default(), now());
    assert_pass(&ev.checks[0]);
    assert_eq!(ev.next_change, Some(now() + Duration::days(1)));
}

// ------------------------------------------------------------- paths

#[test]
fn quoted_keys_reach_annotations_with_dots_and_slashes() {
    let e = component();
    let o = eval(
        json!({"field": "metadata.annotations[\"pagerduty.com/service-id\"]", "equals": "px12345"}),
        &e,
    );
    assert_pass(&o);
    assert_eq!(o.value, Some(json!("PX12345")));
    // Without quotes the dots split the key, so nothing is found.
    let o = eval(
        json!({"field": "metadata.annotations.pagerduty.com/service-id", "exists": true}),
        &e,
    );
    assert_fail(&o, &["it is missing"]);
}

#[test]
fn star_fans_out_over_list_items() {
    let e = component();
    let o = eval(
        json!({"field": "metadata.links[*].type", "equals": "runbook"}),
        &e,
    );
    assert_pass(&o);
    assert_eq!(o.value, Some(json!(["dashboard", "runbook"])));
    let o = eval(
        json!({"field": "metadata.links[*].type", "equals": "docs"}),
        &e,
    );
    assert_fail(
        &o,
        &["metadata.links[*].type = docs", "dashboard", "runbook"],
    );
}

#[test]
fn star_fans_out_over_object_values() {
    let e = component();
    let o = eval(
        json!({"field": "metadata.annotations[*]", "equals": "acme/payments"}),
        &e,
    );
    assert_pass(&o);
}

#[test]
fn indexes_pick_one_item() {
    let e = component();
    let o = eval(json!({"field": "spec.items[0]", "equals": "first"}), &e);
    assert_pass(&o);
    assert_eq!(o.value, Some(json!("first")));
    assert!(!eval(json!({"field": "spec.items[0]", "equals": "second"}), &e).pass);
    assert_pass(&eval(
        json!({"field": "spec.items[1]", "equals": "second"}),
        &e,
    ));
    assert_fail(
        &eval(json!({"field": "spec.items[2]", "exists": true}), &e),
        &["it is missing"],
    );
    // An index into a non-list reaches nothing.
    assert!(!eval(json!({"field": "spec.owner[0]", "exists": true}), &e).pass);
}

#[test]
fn keys_fall_back_to_a_case_insensitive_match() {
    let e = component();
    let o = eval(
        json!({"field": "SPEC.Lifecycle", "equals": "production"}),
        &e,
    );
    assert_pass(&o);
    assert_pass(&eval(
        json!({"field": "spec.updatedat", "exists": true}),
        &e,
    ));
    // An exact match wins over a case-insensitive one.
    let e = json!({"spec": {"Owner": "upper", "owner": "lower"}});
    let o = eval(json!({"field": "spec.Owner", "exists": true}), &e);
    assert_eq!(o.value, Some(json!("upper")));
    let o = eval(json!({"field": "spec.owner", "exists": true}), &e);
    assert_eq!(o.value, Some(json!("lower")));
}

#[test]
fn path_parse_segments() {
    let p = Path::parse(r#" a.b["c.d/e"][0][*].f "#).unwrap();
    assert_eq!(p.text, r#"a.b["c.d/e"][0][*].f"#);
    assert_eq!(
        p.segments,
        vec![
            Segment::Key("a".into()),
            Segment::Key("b".into()),
            Segment::Key("c.d/e".into()),
            Segment::Index(0),
            Segment::Any,
            Segment::Key("f".into()),
        ]
    );
    assert_eq!(
        Path::parse("x[ 12 ]").unwrap().segments,
        vec![Segment::Key("x".into()), Segment::Index(12)]
    );
}

#[test]
fn path_parse_errors() {
    let cases = [
        ("a..b", "empty segment"),
        (".a", "empty segment"),
        ("a[", "missing `]`"),
        ("a[0", "missing `]`"),
        ("a.", "ends with `.`"),
        ("a[x]", "neither an index, `*` nor a quoted key"),
        ("a[-1]", "neither an index"),
        ("a[\"x]", "unterminated quoted key"),
        ("a[\"x\"", "missing `]`"),
        ("a[0]b", "expected `.` or `[`"),
        ("a b", "bad segment"),
        ("", "empty path"),
        ("   ", "empty path"),
    ];
    for (text, want) in cases {
        match Path::parse(text) {
            Ok(p) => panic!("{text:?} parsed as {p:?}"),
            Err(e) => assert!(e.contains(want), "{text:?}: {e:?} lacks {want:?}"),
        }
    }
}

#[test]
fn path_parse_errors_name_the_path() {
    let e = Path::parse("metadata..name").unwrap_err();
    assert!(e.contains("`metadata..name`"), "{e}");
}

// ------------------------------------------------------------- facts

#[test]
fn fact_rule_reads_the_subjects_facts() {
    let e = component();
    let mut ctx = linked_ctx();
    let o = eval_in(
        json!({"fact": "github.branch_protection.required_reviews", "gte": 2}),
        &e,
        &mut ctx,
    );
    assert_pass(&o);
    assert_eq!(o.value, Some(json!(2)));
    let o = eval_in(
        json!({"fact": "github.branch_protection.required_reviews", "gte": 3}),
        &e,
        &mut ctx,
    );
    assert_fail(
        &o,
        &[
            "fact github.branch_protection.required_reviews >= 3",
            "found 2",
        ],
    );
    assert_pass(&eval_in(
        json!({"fact": "github.branch_protection.protected", "equals": true}),
        &e,
        &mut ctx,
    ));
}

#[test]
fn fact_rule_does_not_read_the_entity() {
    // The entity has `spec.replicas`, the facts do not.
    let e = component();
    let o = eval_in(
        json!({"fact": "github.spec.replicas", "exists": true}),
        &e,
        &mut linked_ctx(),
    );
    assert_fail(&o, &["it is missing"]);
}

#[test]
fn fact_files_exist() {
    let e = component();
    let mut ctx = linked_ctx();
    let o = eval_in(
        json!({"fact": "github.files.README", "exists": true}),
        &e,
        &mut ctx,
    );
    assert_pass(&o);
    assert_eq!(o.value, Some(json!("README.md")));
    // Case-insensitive key fallback applies to facts too.
    assert_pass(&eval_in(
        json!({"fact": "github.files.readme", "exists": true}),
        &e,
        &mut ctx,
    ));
    // A file recorded as null, or not recorded at all, is absent.
    for f in ["CODEOWNERS", "LICENSE"] {
        let rule = json!({"fact": format!("github.files.{f}"), "exists": true});
        let o = eval_in(rule, &e, &mut ctx);
        assert_fail(
            &o,
            &[&format!("fact github.files.{f} exists"), "it is missing"],
        );
        let rule = json!({"fact": format!("github.files.{f}"), "exists": false});
        assert_pass(&eval_in(rule, &e, &mut ctx));
    }
}

#[test]
fn fact_last_push_reads_pushed_at() {
    let e = component();
    let def = def_of(&[json!({"fact": "github.last_push", "within": "90d"})]);
    let ev = def.evaluate(&e, &mut linked_ctx(), now());
    assert_pass(&ev.checks[0]);
    assert_eq!(
        ev.next_change,
        Some(now() - Duration::days(10) + Duration::days(90))
    );
    let o = eval_in(
        json!({"fact": "github.last_push", "within": "7d"}),
        &e,
        &mut linked_ctx(),
    );
    assert_fail(&o, &["fact github.pushed_at within 1w"]);
    // The alias is only for the whole path.
    let o = eval_in(
        json!({"fact": "github.pushed_at", "within": "90d"}),
        &e,
        &mut linked_ctx(),
    );
    assert_pass(&o);
}

#[test]
fn fact_denied_section_fails_as_not_readable() {
    let e = component();
    let mut facts = facts_json();
    facts["branch_protection"] = json!({"access": "denied", "reason": "Resource not accessible"});
    let mut ctx = TestCtx::default().with_facts("github:github.com/acme/payments", Some(facts));
    let o = eval_in(
        json!({"fact": "github.branch_protection.required_reviews", "gte": 2}),
        &e,
        &mut ctx,
    );
    assert_fail(
        &o,
        &[
            "fact github.branch_protection.required_reviews >= 2",
            "branch_protection is not readable",
            "Resource not accessible",
        ],
    );
    assert_eq!(o.value, None);
    // Even `exists: false` cannot tell, so it fails too.
    let o = eval_in(
        json!({"fact": "github.branch_protection.required_reviews", "exists": false}),
        &e,
        &mut ctx,
    );
    assert_fail(&o, &["not readable"]);
    // Other sections are still readable.
    assert_pass(&eval_in(
        json!({"fact": "github.files.README", "exists": true}),
        &e,
        &mut ctx,
    ));
}

#[test]
fn fact_denied_without_reason_says_denied() {
    let e = component();
    let facts = json!({"branch_protection": {"access": "denied"}});
    let mut ctx = TestCtx::default().with_facts("github:github.com/acme/payments", Some(facts));
    let o = eval_in(
        json!({"fact": "github.branch_protection.protected", "equals": true}),
        &e,
        &mut ctx,
    );
    assert_fail(&o, &["branch_protection is not readable: denied"]);
}

#[test]
fn fact_on_an_unlinked_entity_fails_as_not_linked() {
    let e = component();
    let mut ctx = TestCtx::default();
    let o = eval_in(
        json!({"fact": "github.files.README", "exists": true}),
        &e,
        &mut ctx,
    );
    assert_fail(
        &o,
        &["fact github.files.README exists", "not linked", "github"],
    );
    assert_eq!(o.value, None);
    assert!(!o.known);
    // Nothing can be read: neither presence nor absence holds, and a
    // negation does not turn the unknown into a pass.
    let absent = eval_in(
        json!({"fact": "github.files.README", "exists": false}),
        &e,
        &mut ctx,
    );
    assert_fail(&absent, &["not linked"]);
    let negated = eval_in(
        json!({"not": {"fact": "github.branch_protection.required_reviews", "lt": 2}}),
        &e,
        &mut ctx,
    );
    assert_fail(&negated, &["not linked"]);
}

#[test]
fn fact_of_a_linked_subject_without_facts_fails_as_unknown() {
    let e = component();
    let mut ctx = TestCtx::default().with_facts("github:github.com/acme/payments", None);
    let o = eval_in(
        json!({"fact": "github.branch_protection.required_reviews", "gte": 2}),
        &e,
        &mut ctx,
    );
    assert_fail(&o, &["no facts known", "github:github.com/acme/payments"]);
    assert!(!o.reason.unwrap().contains("not linked"));
}

// ------------------------------------------------------------- relations

fn owned_by(target: &str) -> Value {
    json!({"kind": "Component", "relations": [{"type": "ownedBy", "targetRef": target}]})
}

#[test]
fn relation_to_a_group_passes() {
    let o = eval(
        json!({"relation": "ownedBy", "target_kind": "group"}),
        &owned_by("group:default/team-a"),
    );
    assert_pass(&o);
    assert_eq!(o.value, Some(json!(["group:default/team-a"])));
    // Kinds compare without regard to case, on both sides.
    assert_pass(&eval(
        json!({"relation": "ownedby", "target_kind": "Group"}),
        &owned_by("Group:default/team-a"),
    ));
}

#[test]
fn relation_to_the_wrong_kind_fails_naming_what_was_found() {
    let o = eval(
        json!({"relation": "ownedBy", "target_kind": "group"}),
        &owned_by("user:default/jane"),
    );
    assert_fail(
        &o,
        &["relation ownedBy to a group", "found user:default/jane"],
    );
    assert_eq!(o.value, Some(json!(["user:default/jane"])));
}

#[test]
fn relation_missing_fails_saying_there_is_none() {
    let e = json!({"kind": "Component", "relations": [{"type": "partOf", "targetRef": "system:default/x"}]});
    let o = eval(json!({"relation": "ownedBy"}), &e);
    assert_fail(&o, &["it has no ownedBy relation"]);
    assert_eq!(o.value, Some(json!([])));
    let o = eval(
        json!({"relation": "ownedBy"}),
        &json!({"kind": "Component"}),
    );
    assert_fail(&o, &["it has no ownedBy relation"]);
}

#[test]
fn relation_without_target_kind_takes_any_target() {
    assert_pass(&eval(
        json!({"relation": "ownedBy"}),
        &owned_by("user:default/jane"),
    ));
}

#[test]
fn relation_with_several_targets_passes_if_one_is_of_the_kind() {
    let e = json!({"relations": [
        {"type": "ownedBy", "targetRef": "user:default/jane"},
        {"type": "ownedBy", "targetRef": "group:default/team-a"},
    ]});
    let o = eval(json!({"relation": "ownedBy", "target_kind": "group"}), &e);
    assert_pass(&o);
    assert_eq!(
        o.value,
        Some(json!(["user:default/jane", "group:default/team-a"]))
    );
}

fn part_of_rule() -> Value {
    json!({"relation": "partOf", "target_kind": "system", "target": {"field": "spec.domain", "exists": true}})
}

#[test]
fn relation_target_rule_reads_the_target_through_the_context() {
    let e = component(); // partOf system:default/Payments
    let mut ctx = TestCtx::default().with_entity(
        "system:default/payments",
        json!({"kind": "System", "spec": {"domain": "finance"}}),
    );
    let o = eval_in(part_of_rule(), &e, &mut ctx);
    assert_pass(&o);
    assert_eq!(o.value, Some(json!(["system:default/Payments"])));
    // Looked up by the lower-cased ref key.
    assert_eq!(ctx.looked_up, vec!["system:default/payments".to_string()]);
}

#[test]
fn relation_target_rule_fails_when_the_target_fails_it() {
    let e = component();
    let mut ctx = TestCtx::default().with_entity(
        "system:default/payments",
        json!({"kind": "System", "spec": {"owner": "team-a"}}),
    );
    let o = eval_in(part_of_rule(), &e, &mut ctx);
    assert_fail(
        &o,
        &[
            "relation partOf to a system whose spec.domain exists",
            "system:default/Payments: ",
            "it is missing",
        ],
    );
}

#[test]
fn relation_target_missing_from_the_catalog_fails() {
    let e = component();
    let mut ctx = TestCtx::default();
    let o = eval_in(part_of_rule(), &e, &mut ctx);
    assert_fail(&o, &["system:default/Payments is not in the catalog"]);
    assert_eq!(ctx.looked_up, vec!["system:default/payments".to_string()]);
}

#[test]
fn relation_target_rule_only_looks_at_targets_of_the_kind() {
    let e = json!({"relations": [
        {"type": "partOf", "targetRef": "domain:default/finance"},
        {"type": "partOf", "targetRef": "system:default/pay"},
    ]});
    let mut ctx = TestCtx::default()
        .with_entity("domain:default/finance", json!({"spec": {"domain": "x"}}))
        .with_entity("system:default/pay", json!({"spec": {"domain": "finance"}}));
    assert_pass(&eval_in(part_of_rule(), &e, &mut ctx));
    assert_eq!(ctx.looked_up, vec!["system:default/pay".to_string()]);
}

#[test]
fn relation_target_rule_passes_if_any_target_passes() {
    let e = json!({"relations": [
        {"type": "partOf", "targetRef": "system:default/a"},
        {"type": "partOf", "targetRef": "system:default/b"},
    ]});
    let mut ctx = TestCtx::default()
        .with_entity("system:default/a", json!({"spec": {}}))
        .with_entity("system:default/b", json!({"spec": {"domain": "finance"}}));
    assert_pass(&eval_in(part_of_rule(), &e, &mut ctx));
    // And names every target's failure when none does.
    let mut ctx = TestCtx::default().with_entity("system:default/a", json!({"spec": {}}));
    let o = eval_in(part_of_rule(), &e, &mut ctx);
    assert_fail(
        &o,
        &[
            "system:default/a: ",
            "system:default/b is not in the catalog",
        ],
    );
}

// ------------------------------------------------------------- combinators

#[test]
fn all_passes_only_when_every_rule_passes() {
    let e = component();
    let ok = json!({"all": [
        {"field": "spec.owner", "exists": true},
        {"field": "spec.replicas", "gte": 2},
    ]});
    assert_pass(&eval(ok, &e));
    let bad = json!({"all": [
        {"field": "spec.owner", "exists": true},
        {"field": "spec.replicas", "gte": 5},
        {"field": "spec.missing", "exists": true},
    ]});
    let o = eval(bad, &e);
    // The first failing rule's outcome.
    assert_fail(&o, &["spec.replicas >= 5", "found 3"]);
    assert!(!o.reason.as_ref().unwrap().contains("spec.missing"));
    assert_eq!(o.value, Some(json!(3)));
}

#[test]
fn any_passes_when_one_rule_passes() {
    let e = component();
    let ok = json!({"any": [
        {"field": "spec.missing", "exists": true},
        {"field": "spec.replicas", "gte": 2},
    ]});
    assert_pass(&eval(ok, &e));
    let bad = json!({"any": [
        {"field": "spec.missing", "exists": true},
        {"field": "spec.replicas", "gte": 5},
    ]});
    let o = eval(bad, &e);
    assert_fail(
        &o,
        &[
            "none of these hold",
            "spec.missing exists",
            "; ",
            "spec.replicas >= 5",
        ],
    );
    // The first value seen.
    assert_eq!(o.value, Some(json!(3)));
}

#[test]
fn not_inverts() {
    let e = component();
    let o = eval(
        json!({"not": {"field": "spec.lifecycle", "equals": "experimental"}}),
        &e,
    );
    assert_pass(&o);
    let o = eval(
        json!({"not": {"field": "spec.lifecycle", "equals": "production"}}),
        &e,
    );
    assert_fail(
        &o,
        &["expected not spec.lifecycle = production, and it holds"],
    );
    assert_eq!(o.value, Some(json!("Production")));
}

#[test]
fn nested_combinators() {
    let e = component();
    let rule = json!({"all": [
        {"any": [
            {"field": "spec.type", "equals": "website"},
            {"not": {"field": "spec.type", "equals": "library"}},
        ]},
        {"relation": "ownedBy", "target_kind": "group"},
    ]});
    assert_pass(&eval(rule, &e));
}

#[test]
fn within_inside_not_still_reports_the_next_change() {
    let e = component();
    let def = def_of(&[json!({"not": {"field": "spec.updatedAt", "within": "30d"}})]);
    let ev = def.evaluate(&e, &mut TestCtx::default(), now());
    assert!(!ev.checks[0].pass);
    assert_eq!(ev.next_change, Some(now() + Duration::days(20)));
}

// ------------------------------------------------------------- display

fn shown(rule: Value) -> String {
    compile_rule(&rule, 0).unwrap().to_string()
}

#[test]
fn rules_describe_themselves() {
    let cases = [
        (
            json!({"fact": "github.branch_protection.required_reviews", "gte": 2}),
            "fact github.branch_protection.required_reviews >= 2",
        ),
        (json!({"field": "a", "gt": 1.5}), "a > 1.5"),
        (json!({"field": "a", "lt": 1}), "a < 1"),
        (json!({"field": "a", "lte": 1}), "a <= 1"),
        (json!({"field": "a", "exists": true}), "a exists"),
        (json!({"field": "a", "exists": false}), "a is absent"),
        (json!({"field": "a", "equals": "X"}), "a = X"),
        (json!({"field": "a", "equals": 3}), "a = 3"),
        (json!({"field": "a", "in": ["x", 2]}), "a in [x, 2]"),
        (json!({"field": "a", "matches": "^x+$"}), "a matches /^x+$/"),
        (json!({"field": "a", "within": "90d"}), "a within 90d"),
        (json!({"field": "a", "within": "14d"}), "a within 2w"),
        (json!({"field": "a", "within": "48h"}), "a within 2d"),
        (json!({"field": "a", "within": "90s"}), "a within 90s"),
        (json!({"field": "a", "within": "120s"}), "a within 2m"),
        (
            json!({"relation": "ownedBy", "target_kind": "Group"}),
            "relation ownedBy to a group",
        ),
        (json!({"relation": "OWNEDBY"}), "relation ownedBy"),
        (
            part_of_rule(),
            "relation partOf to a system whose spec.domain exists",
        ),
        (
            json!({"all": [{"field": "a", "exists": true}, {"field": "b", "exists": true}]}),
            "(a exists and b exists)",
        ),
        (
            json!({"any": [{"field": "a", "exists": true}, {"field": "b", "exists": true}]}),
            "(a exists or b exists)",
        ),
        (
            json!({"not": {"field": "a", "exists": true}}),
            "not a exists",
        ),
    ];
    for (rule, want) in cases {
        assert_eq!(shown(rule.clone()), want, "{rule}");
    }
}

#[test]
fn failing_reasons_start_with_the_rule() {
    let o = eval(json!({"field": "spec.replicas", "gte": 5}), &component());
    assert_eq!(
        o.reason.as_deref(),
        Some("expected spec.replicas >= 5; found 3")
    );
}

// ------------------------------------------------------------- compile

const GOOD: &str = r#"
id: production-readiness
title: Production readiness
description: Is it ready?
applies_to: {kind: component, spec.lifecycle: [production, Experimental]}
levels: [bronze, silver, gold]
checks:
  - id: owner-is-group
    title: Owned by a group
    level: bronze
    weight: 3
    rule: {relation: ownedBy, target_kind: group}
  - id: reviews
    level: gold
    rule: {fact: github.branch_protection.required_reviews, gte: 2}
  - id: pagerduty
    level: silver
    description: Paged when it breaks
    rule:
      field: metadata.annotations["pagerduty.com/service-id"]
      exists: true
  - id: fresh
    rule:
      any:
        - {fact: github.last_push, within: 90d}
        - not: {field: spec.lifecycle, in: [production]}
"#;

#[test]
fn compiles_a_good_definition() {
    let d = compile("prod.yaml", GOOD).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(d.id, "production-readiness");
    assert_eq!(d.title, "Production readiness");
    assert_eq!(d.description.as_deref(), Some("Is it ready?"));
    assert_eq!(d.levels, vec!["bronze", "silver", "gold"]);
    let ids: Vec<&str> = d.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["owner-is-group", "reviews", "pagerduty", "fresh"]);
    let levels: Vec<usize> = d.checks.iter().map(|c| c.level).collect();
    assert_eq!(levels, [0, 2, 1, 0]);
    let weights: Vec<u32> = d.checks.iter().map(|c| c.weight).collect();
    assert_eq!(weights, [3, 1, 1, 1]);
    assert_eq!(d.checks[0].title, "Owned by a group");
    assert_eq!(d.checks[1].title, "reviews");
    assert_eq!(
        d.checks[2].description.as_deref(),
        Some("Paged when it breaks")
    );
    assert!(d.checks[1].rule.to_string().contains(">= 2"));
    assert!(matches!(d.checks[3].rule, Rule::Any(ref rs) if rs.len() == 2));
    let mut conds: Vec<(String, Vec<String>)> = d
        .applies_to
        .conditions()
        .iter()
        .map(|c| (c.key.clone(), c.values.clone()))
        .collect();
    conds.sort();
    assert_eq!(
        conds,
        vec![
            ("kind".to_string(), vec!["component".to_string()]),
            (
                "spec.lifecycle".to_string(),
                vec!["production".to_string(), "experimental".to_string()]
            ),
        ]
    );
}

#[test]
fn good_definition_evaluates_end_to_end() {
    let d = compile("prod.yaml", GOOD).unwrap();
    let e = component();
    assert!(d.applies(&e));
    let ev = d.evaluate(&e, &mut linked_ctx(), now());
    let pass: Vec<bool> = ev.checks.iter().map(|o| o.pass).collect();
    assert_eq!(pass, [true, true, true, true]);
    assert_eq!(ev.next_change, Some(now() + Duration::days(80)));
    // Unlinked: the review check fails, and so does `fresh` (its `any`
    // falls through to `not lifecycle in [production]`, which fails too).
    let ev = d.evaluate(&e, &mut TestCtx::default(), now());
    let pass: Vec<bool> = ev.checks.iter().map(|o| o.pass).collect();
    assert_eq!(pass, [true, false, true, false]);
    assert_eq!(ev.next_change, None);
}

#[test]
fn title_defaults_to_the_id_and_optional_parts_default() {
    let d = compile(
        "min.yaml",
        "id: min\nlevels: [one]\nchecks:\n  - id: a\n    rule: {field: kind, exists: true}\n",
    )
    .unwrap();
    assert_eq!(d.title, "min");
    assert_eq!(d.description, None);
    assert!(d.applies_to.conditions().is_empty());
    assert!(d.applies(&json!({})));
    assert_eq!((d.checks[0].level, d.checks[0].weight), (0, 1));
}

/// Compiles a definition with `checks` (YAML) and returns its errors.
fn errors_of(checks: &str) -> Vec<DefinitionError> {
    let text = format!("id: sc\nlevels: [bronze, silver]\nchecks:\n{checks}");
    match compile("defs/sc.yaml", &text) {
        Ok(_) => panic!("compiled:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts exactly one error, for `check`, whose reason contains `want`.
fn assert_one_error(checks: &str, check: &str, want: &str) {
    let errs = errors_of(checks);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = &errs[0];
    assert_eq!(e.file, "defs/sc.yaml");
    assert_eq!(e.check.as_deref(), Some(check), "{e:?}");
    assert!(e.reason.contains(want), "{e:?} lacks {want:?}");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("defs/sc.yaml: check `{check}`: ")),
        "{shown}"
    );
}

#[test]
fn unknown_operator_is_an_error() {
    assert_one_error(
        "  - id: a\n    rule: {field: kind, contains: x}\n",
        "a",
        "unknown operator `contains`",
    );
}

#[test]
fn two_operators_in_one_rule_is_an_error() {
    assert_one_error(
        "  - id: a\n    rule: {field: spec.replicas, gt: 1, lt: 5}\n",
        "a",
        "one operator per rule, found gt, lt",
    );
}

#[test]
fn no_operator_is_an_error() {
    assert_one_error("  - id: a\n    rule: {field: kind}\n", "a", "no operator");
}

#[test]
fn bad_regex_is_an_error() {
    assert_one_error(
        "  - id: a\n    rule: {field: kind, matches: \"(unclosed\"}\n",
        "a",
        "invalid regular expression",
    );
}

#[test]
fn unknown_level_is_an_error() {
    assert_one_error(
        "  - id: a\n    level: platinum\n    rule: {field: kind, exists: true}\n",
        "a",
        "level `platinum` is not one of the scorecard's levels",
    );
}

#[test]
fn duplicate_check_id_is_an_error() {
    assert_one_error(
        "  - id: a\n    rule: {field: kind, exists: true}\n  - id: a\n    rule: {field: kind, exists: false}\n",
        "a",
        "duplicate check id",
    );
}

#[test]
fn unknown_relation_type_is_an_error() {
    assert_one_error(
        "  - id: a\n    rule: {relation: friendOf}\n",
        "a",
        "unknown relation `friendOf` (known: ownedBy",
    );
}

#[test]
fn unknown_fact_provider_is_an_error() {
    assert_one_error(
        "  - id: a\n    rule: {fact: gitlab.files.README, exists: true}\n",
        "a",
        "unknown provider `gitlab`",
    );
    assert_one_error(
        "  - id: a\n    rule: {fact: github, exists: true}\n",
        "a",
        "expected PROVIDER.PATH",
    );
}

#[test]
fn weight_out_of_range_is_an_error() {
    for w in ["0", "1001", "-1", "1.5", "heavy"] {
        assert_one_error(
            &format!("  - id: a\n    weight: {w}\n    rule: {{field: kind, exists: true}}\n"),
            "a",
            "must be a whole number from 1 to 1000",
        );
    }
}

#[test]
fn bad_paths_and_arguments_are_errors() {
    let cases = [
        ("{field: a..b, exists: true}", "empty segment"),
        (
            "{field: kind, exists: yes please}",
            "`exists` takes true or false",
        ),
        ("{field: kind, gt: many}", "`gt` takes a number"),
        ("{field: kind, in: []}", "`in` takes a non-empty list"),
        ("{field: kind, equals: [a]}", "`equals`"),
        ("{field: kind, within: 90x}", "duration `90x`"),
        ("{field: kind, within: 0d}", "at most 100 years"),
        ("{field: kind, within: 5300w}", "at most 100 years"),
        ("{all: []}", "`all` takes a non-empty list of rules"),
        (
            "{all: [{field: kind, exists: true}], field: x}",
            "unexpected `field`",
        ),
        ("{relation: ownedBy, exists: true}", "unexpected `exists`"),
        ("{kind: x}", "a rule needs one of"),
        ("[a]", "a rule must be a mapping"),
    ];
    for (rule, want) in cases {
        assert_one_error(&format!("  - id: a\n    rule: {rule}\n"), "a", want);
    }
}

#[test]
fn rules_nest_at_most_eight_deep() {
    let mut rule = json!({"field": "kind", "exists": true});
    for _ in 0..8 {
        rule = json!({"not": rule});
    }
    assert!(compile_rule(&rule, 0).is_ok());
    let rule = json!({"not": rule});
    let e = compile_rule(&rule, 0).unwrap_err();
    assert!(e.contains("nest deeper than 8"), "{e}");
}

#[test]
fn check_problems_without_an_id_name_the_position() {
    let errs = errors_of(
        "  - rule: {field: kind, exists: true}\n  - id: Bad Id\n    rule: {field: kind, exists: true}\n",
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(errs[0].check.as_deref(), Some("#1"));
    assert!(errs[0].reason.contains("`id` is required"));
    assert_eq!(errs[1].check.as_deref(), Some("Bad Id"));
    assert!(errs[1].reason.contains("lower-case"));
}

#[test]
fn unknown_check_field_is_an_error() {
    assert_one_error(
        "  - id: a\n    severity: high\n    rule: {field: kind, exists: true}\n",
        "a",
        "unknown field `severity`",
    );
}

#[test]
fn missing_levels_is_an_error() {
    let errs = compile("x.yaml", "id: x\nchecks: []\n").unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].check, None);
    assert!(errs[0].reason.contains("`levels` is required"), "{errs:?}");
    assert_eq!(errs[0].to_string(), format!("x.yaml: {}", errs[0].reason));
    // An empty list is no better.
    let errs = compile("x.yaml", "id: x\nlevels: []\nchecks: []\n").unwrap_err();
    assert!(errs[0].reason.contains("`levels` is required"), "{errs:?}");
    // Nor are duplicate level names.
    let errs = compile("x.yaml", "id: x\nlevels: [a, a]\nchecks: []\n").unwrap_err();
    assert!(errs[0].reason.contains("not a distinct"), "{errs:?}");
}

#[test]
fn top_level_problems() {
    let cases = [
        ("levels: [a]\nchecks: []\n", "`id` is required"),
        (
            "id: Not-Valid\nlevels: [a]\nchecks: []\n",
            "id `Not-Valid` must be lower-case",
        ),
        ("id: x\nlevels: [a]\n", "`checks` is required"),
        (
            "id: x\nlevels: [a]\nchecks: []\nowner: me\n",
            "unknown field `owner`",
        ),
        (
            "id: x\nlevels: [a]\nchecks: []\napplies_to: [component]\n",
            "applies_to: must be a mapping",
        ),
        (
            "id: x\nlevels: [a]\nchecks: []\napplies_to: {kind: {a: b}}\n",
            "is not a scalar",
        ),
        ("- a\n- b\n", "a definition must be a mapping"),
    ];
    for (text, want) in cases {
        let errs = compile("x.yaml", text).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.reason.contains(want) && e.check.is_none()),
            "{text:?}: {errs:?} lacks {want:?}"
        );
    }
}

#[test]
fn invalid_yaml_is_an_error() {
    let errs = compile("broken.yaml", "id: x\nlevels: [a, b\nchecks: {\n").unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].file, "broken.yaml");
    assert_eq!(errs[0].check, None);
    assert!(errs[0].reason.starts_with("not valid YAML"), "{errs:?}");
    assert!(
        errs[0]
            .to_string()
            .starts_with("broken.yaml: not valid YAML")
    );
}

#[test]
fn oversized_definition_is_an_error() {
    let text = format!(
        "id: x\nlevels: [a]\nchecks: []\ndescription: \"{}\"\n",
        "x".repeat(super::lang::MAX_DEFINITION_BYTES)
    );
    let errs = compile("big.yaml", &text).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].reason.contains("bytes, more than the"), "{errs:?}");
}

#[test]
fn every_error_is_reported_at_once() {
    let text = r#"
id: sc
levels: [bronze]
extra: 1
checks:
  - id: a
    rule: {field: kind, contains: x}
  - id: b
    level: gold
    rule: {field: kind, exists: true}
  - id: c
    weight: 0
    rule: {field: kind, exists: true}
  - id: d
    rule: {field: kind, matches: "["}
  - id: d
    rule: {relation: friendOf}
  - id: ok
    rule: {field: kind, exists: true}
  - id: ok
    rule: {field: kind, exists: true}
"#;
    let errs = compile("all.yaml", text).unwrap_err();
    let summary: Vec<(Option<&str>, &str)> = errs
        .iter()
        .map(|e| (e.check.as_deref(), e.reason.as_str()))
        .collect();
    assert_eq!(errs.len(), 7, "{summary:#?}");
    assert!(errs.iter().all(|e| e.file == "all.yaml"));
    let find = |check: Option<&str>, want: &str| {
        assert!(
            summary.iter().any(|(c, r)| *c == check && r.contains(want)),
            "no error for {check:?} containing {want:?} in {summary:#?}"
        );
    };
    find(None, "unknown field `extra`");
    find(Some("a"), "unknown operator `contains`");
    find(Some("b"), "level `gold`");
    find(Some("c"), "weight 0");
    find(Some("d"), "invalid regular expression");
    find(Some("d"), "unknown relation `friendOf`");
    find(Some("ok"), "duplicate check id");
}

#[test]
fn definition_error_display() {
    let e = DefinitionError {
        file: "sc/prod.yaml".into(),
        check: Some("reviews".into()),
        reason: "duplicate check id".into(),
    };
    assert_eq!(
        e.to_string(),
        "sc/prod.yaml: check `reviews`: duplicate check id"
    );
    let e = DefinitionError { check: None, ..e };
    assert_eq!(e.to_string(), "sc/prod.yaml: duplicate check id");
}

// ------------------------------------------------------------- applies_to

fn applies(spec: &str, entity: &Value) -> bool {
    let text = format!(
        "id: m\napplies_to: {spec}\nlevels: [a]\nchecks:\n  - id: c\n    rule: {{field: kind, exists: true}}\n"
    );
    compile("m.yaml", &text)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .applies(entity)
}

#[test]
fn applies_to_kind_without_regard_to_case() {
    let e = component();
    assert!(applies("{kind: component}", &e));
    assert!(applies("{KIND: COMPONENT}", &e));
    assert!(!applies("{kind: api}", &e));
    assert!(applies("{kind: [api, Component]}", &e));
    assert!(!applies("{kind: [api, system]}", &e));
}

#[test]
fn applies_to_nested_fields() {
    let e = component();
    assert!(applies("{spec.type: service}", &e));
    assert!(applies("{spec.lifecycle: production}", &e));
    assert!(applies(
        "{kind: component, spec.type: [service, website]}",
        &e
    ));
    // Every key must match.
    assert!(!applies("{kind: component, spec.type: website}", &e));
    assert!(!applies("{spec.lifecycle: experimental}", &e));
}

#[test]
fn applies_to_list_values_match_any_item() {
    let e = component(); // tags: java, Payments
    assert!(applies("{metadata.tags: payments}", &e));
    assert!(applies("{metadata.tags: [python, java]}", &e));
    assert!(!applies("{metadata.tags: python}", &e));
}

#[test]
fn applies_to_null_means_present() {
    let e = component();
    assert!(applies("{spec.owner: null}", &e));
    assert!(applies("{spec.owner: }", &e));
    assert!(!applies("{spec.system: null}", &e));
}

#[test]
fn applies_to_scalars() {
    let e = component(); // replicas 3, enabled true
    assert!(applies("{spec.replicas: 3}", &e));
    assert!(!applies("{spec.replicas: 4}", &e));
    assert!(applies("{spec.enabled: true}", &e));
    assert!(!applies("{spec.enabled: false}", &e));
}

#[test]
fn applies_to_relations() {
    let e = component(); // ownedBy group:default/team-a
    assert!(applies("{relations.ownedby: group:default/team-a}", &e));
    assert!(applies("{relations.ownedBy: Group:Default/Team-A}", &e));
    assert!(!applies("{relations.ownedby: group:default/team-b}", &e));
    assert!(!applies("{relations.dependson: group:default/team-a}", &e));
    assert!(applies("{relations.partof: system:default/payments}", &e));
    assert!(applies("{relations.ownedby: null}", &e));
    assert!(!applies("{relations.dependson: null}", &e));
}

#[test]
fn empty_match_applies_to_everything() {
    let m = EntityMatch::default();
    assert!(m.matches(&json!({})));
    assert!(m.matches(&component()));
}

// ------------------------------------------------------------- github_subject

#[test]
fn github_subject_from_project_slug() {
    let e = json!({"metadata": {"annotations": {"github.com/project-slug": "Acme/Payments"}}});
    assert_eq!(
        github_subject(&e).as_deref(),
        Some("github:github.com/acme/payments")
    );
    let e = json!({"metadata": {"annotations": {"github.com/project-slug": " acme/pay "}}});
    assert_eq!(
        github_subject(&e).as_deref(),
        Some("github:github.com/acme/pay")
    );
}

#[test]
fn github_subject_from_a_github_location() {
    let e = json!({"metadata": {"annotations": {
        "backstage.io/managed-by-location": "url:https://github.com/Acme/Pay/blob/main/catalog-info.yaml",
    }}});
    assert_eq!(
        github_subject(&e).as_deref(),
        Some("github:github.com/acme/pay")
    );
    // A source location wins over the managed-by location; `.git` is dropped.
    let e = json!({"metadata": {"annotations": {
        "backstage.io/source-location": "url:https://github.com/acme/billing.git",
        "backstage.io/managed-by-location": "url:https://github.com/Acme/Pay/blob/main/catalog-info.yaml",
    }}});
    assert_eq!(
        github_subject(&e).as_deref(),
        Some("github:github.com/acme/billing")
    );
}

#[test]
fn github_subject_slug_takes_the_host_of_the_location() {
    let e = json!({"metadata": {"annotations": {
        "github.com/project-slug": "acme/pay",
        "backstage.io/managed-by-location": "url:https://github.example.com/other/repo/blob/main/catalog-info.yaml",
    }}});
    assert_eq!(
        github_subject(&e).as_deref(),
        Some("github:github.example.com/acme/pay")
    );
}

#[test]
fn github_subject_none_without_a_github_link() {
    let cases = [
        json!({"metadata": {"annotations": {
            "backstage.io/managed-by-location": "file:/repo/catalog-info.yaml",
        }}}),
        json!({"metadata": {"annotations": {
            "backstage.io/managed-by-location": "url:https://gitlab.com/acme/pay/-/blob/main/catalog-info.yaml",
        }}}),
        json!({"metadata": {"annotations": {
            "backstage.io/managed-by-location": "url:https://github.com/acme",
        }}}),
        json!({"metadata": {"annotations": {"github.com/project-slug": "no-slash"}}}),
        json!({"metadata": {"name": "x"}}),
        json!({}),
    ];
    for e in cases {
        assert_eq!(github_subject(&e), None, "{e}");
    }
}

// ------------------------------------------------ fixes found in review

#[test]
fn field_and_fact_in_one_rule_is_an_error() {
    let err = crate::scorecard::lang::compile_rule(
        &json!({"field": "spec.owner", "fact": "github.files.README", "exists": true}),
        0,
    )
    .unwrap_err();
    assert!(err.contains("cannot be combined"), "{err}");
}

#[test]
fn applies_to_reads_keys_that_hold_dots() {
    let text = "id: x\nlevels: [a]\napplies_to:\n  metadata.annotations.github.com/project-slug: ACME/payments\nchecks: []\n";
    let def = crate::scorecard::lang::compile("f.yaml", text).unwrap();
    assert!(def.applies(&component()));
    let other = "id: x\nlevels: [a]\napplies_to:\n  metadata.annotations.github.com/project-slug: acme/other\nchecks: []\n";
    let def = crate::scorecard::lang::compile("f.yaml", other).unwrap();
    assert!(!def.applies(&component()));
}

#[test]
fn a_denied_section_at_the_end_of_the_path_is_not_readable() {
    let mut facts = facts_json();
    facts["branch_protection"] = json!({"access": "denied", "reason": "Bad credentials"});
    let mut ctx = TestCtx::default().with_facts("github:github.com/acme/payments", Some(facts));
    let o = eval_in(
        json!({"fact": "github.branch_protection", "exists": true}),
        &component(),
        &mut ctx,
    );
    assert_fail(&o, &["branch_protection is not readable: Bad credentials"]);
    assert!(!o.known);
}

#[test]
fn equality_is_the_same_whichever_side_is_text() {
    let e = component();
    assert_pass(&eval(json!({"field": "spec.replicas", "equals": "3"}), &e));
    assert_pass(&eval(
        json!({"field": "spec.replicas", "in": ["2", "3"]}),
        &e,
    ));
    assert_pass(&eval(
        json!({"field": "spec.enabled", "equals": "TRUE"}),
        &e,
    ));
    assert_pass(&eval(json!({"field": "spec.threshold", "equals": 12}), &e));
    let o = eval(json!({"field": "spec.replicas", "equals": "three"}), &e);
    assert_fail(&o, &["found 3"]);
}

#[test]
fn infinite_and_nan_text_are_not_numbers() {
    let mut e = component();
    e["spec"]["threshold"] = json!("inf");
    let o = eval(json!({"field": "spec.threshold", "gt": 5}), &e);
    assert_fail(&o, &["not a number"]);
    e["spec"]["threshold"] = json!("NaN");
    let o = eval(json!({"field": "spec.threshold", "lt": 5}), &e);
    assert_fail(&o, &["not a number"]);
}

#[test]
fn what_relations_cards_read_is_known_from_their_rules() {
    use super::lang::RelationsRead;
    use proto::RelationType::*;
    let card = |checks: &str| {
        compile(
            "c.yaml",
            &format!("id: c\napplies_to: {{kind: component}}\nlevels: [bronze]\nchecks:\n{checks}"),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    };
    let mut read = RelationsRead::default();
    assert!(!read.reads(OwnedBy), "no card reads nothing");
    read.add(&card(
        "  - id: a\n    level: bronze\n    rule: {relation: partOf, target_kind: system, target: {relation: hasMember}}\n",
    ));
    // What results are grouped by, the rule's type and the nested rule's.
    for t in [OwnedBy, PartOf, ChildOf, HasMember] {
        assert!(read.reads(t), "{t:?}");
    }
    assert!(!read.reads(DependencyOf) && !read.reads(OwnerOf));
    // A field path into `relations` reads every type.
    read.add(&card(
        "  - id: b\n    level: bronze\n    rule: {field: \"relations[*].type\", exists: true}\n",
    ));
    assert_eq!(read, RelationsRead::All);
    assert!(read.reads(DependencyOf));
}
