//! Scorecards in the fold: what each kind of change re-evaluates, rollups
//! kept incrementally equal to a rebuild, deterministic replay, deadlines
//! (age rules, exemption expiry), definitions replaced, rejected and
//! removed, and trends bucketed on the right day.

use chrono::{DateTime, Duration, TimeZone, Utc};
use projector::scorecard::{RollupBy, TrendInterval, TrendQuery};
use projector::{Catalog, Fold, MemStore, Store};
use proto::{
    Entity, EntityEvent, EntityRef, Exemption, FactEvent, FactState, LocationKey, LocationOutcome,
    ProcessedEntity, Relation, RelationType, ScorecardChange, ScorecardEvent, SourceId, SubjectKey,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

const CARD: &str = "id: t
applies_to: {kind: component}
levels: [bronze, silver, gold]
checks:
  - id: owner
    level: bronze
    weight: 2
    rule: {relation: ownedBy, target_kind: group}
  - id: domain
    level: silver
    rule: {relation: partOf, target_kind: system, target: {relation: partOf, target_kind: domain}}
  - id: reviews
    level: gold
    rule: {fact: github.branch_protection.required_reviews, gte: 2}
  - id: fresh
    level: gold
    rule: {fact: github.last_push, within: 30d}
";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
}

/// One message of any of the three topics (test data: size does not matter).
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Msg {
    Entity(EntityEvent),
    Facts(FactEvent),
    Card(ScorecardEvent),
}

struct World {
    store: Arc<MemStore>,
    next: u128,
}

impl World {
    fn new() -> Self {
        World {
            store: Arc::new(MemStore::new()),
            next: 1,
        }
    }
    fn id(&mut self) -> Uuid {
        self.next += 1;
        Uuid::from_u128(self.next)
    }
    fn catalog(&self) -> Catalog {
        Catalog::new(self.store.clone())
    }
}

fn apply(store: &dyn Store, batch: &[Msg]) {
    let mut fold = Fold::new(store);
    for m in batch {
        match m {
            Msg::Entity(e) => fold.apply(e).unwrap(),
            Msg::Facts(f) => fold.apply_facts(f).unwrap(),
            Msg::Card(c) => fold.apply_scorecard(c).unwrap(),
        };
    }
    let changes = fold.finish().unwrap();
    store.write(changes).unwrap();
}

fn rel(source: &EntityRef, t: RelationType, target: EntityRef) -> [Relation; 2] {
    [
        Relation {
            source: source.clone(),
            relation_type: t,
            target: target.clone(),
        },
        Relation {
            source: target,
            relation_type: t.inverse(),
            target: source.clone(),
        },
    ]
}

fn processed(doc: Value, rels: &[(RelationType, EntityRef)]) -> ProcessedEntity {
    let entity: Entity = serde_json::from_value(doc).unwrap();
    let me = entity.entity_ref();
    ProcessedEntity {
        relations: rels
            .iter()
            .flat_map(|(t, target)| rel(&me, *t, target.clone()))
            .collect(),
        entity,
    }
}

fn r(kind: &str, name: &str) -> EntityRef {
    EntityRef::new(kind, "default", name)
}

fn component(name: &str, owner: &str, system: Option<&str>) -> ProcessedEntity {
    let mut rels = vec![(RelationType::OwnedBy, r("group", owner))];
    if let Some(s) = system {
        rels.push((RelationType::PartOf, r("system", s)));
    }
    processed(
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
               "metadata": {"name": name, "annotations": {"github.com/project-slug": format!("acme/{name}")}},
               "spec": {"type": "service", "lifecycle": "production", "owner": owner, "system": system}}),
        &rels,
    )
}

fn group(name: &str, parent: Option<&str>) -> ProcessedEntity {
    let rels: Vec<_> = parent
        .map(|p| (RelationType::ChildOf, r("group", p)))
        .into_iter()
        .collect();
    processed(
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Group",
               "metadata": {"name": name}, "spec": {"type": "team", "children": [], "parent": parent}}),
        &rels,
    )
}

fn system(name: &str, domain: Option<&str>) -> ProcessedEntity {
    let rels: Vec<_> = domain
        .map(|d| (RelationType::PartOf, r("domain", d)))
        .into_iter()
        .collect();
    processed(
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "System",
               "metadata": {"name": name}, "spec": {"owner": "g", "domain": domain}}),
        &rels,
    )
}

fn located(w: &mut World, loc: &str, at: DateTime<Utc>, entities: Vec<ProcessedEntity>) -> Msg {
    Msg::Entity(EntityEvent {
        event_id: w.id(),
        source: SourceId::new("t"),
        observed_at: at,
        location: LocationKey::new(format!("file:/{loc}.yaml")),
        origin: LocationKey::new("file:/"),
        first_seen_at: Utc.timestamp_opt(1, 0).unwrap(),
        observation_id: w.id(),
        outcome: if entities.is_empty() {
            LocationOutcome::Removed
        } else {
            LocationOutcome::Processed {
                entities,
                errors: vec![],
            }
        },
    })
}

fn facts(w: &mut World, repo: &str, at: DateTime<Utc>, reviews: u32, pushed: DateTime<Utc>) -> Msg {
    let facts = serde_json::from_value(json!({
        "kind": "github_repository", "host": "github.com", "owner": "acme", "name": repo,
        "id": 1, "url": format!("https://github.com/acme/{repo}"), "default_branch": "main",
        "branch": "main", "visibility": "private", "archived": false, "fork": false,
        "topics": [], "primary_language": null, "languages": {}, "pushed_at": pushed,
        "files": {"README": "README.md"}, "descriptors": [],
        "branch_protection": {"access": "granted", "protected": true, "required_reviews": reviews,
            "require_code_owner_reviews": false, "dismiss_stale_reviews": false,
            "enforce_admins": false, "required_status_checks": [], "allow_force_pushes": false,
            "allow_deletions": false},
        "dependabot_alerts": {"access": "denied", "reason": "off"}
    }))
    .unwrap();
    Msg::Facts(FactEvent {
        event_id: w.id(),
        source: SourceId::new("gh"),
        observed_at: at,
        subject: SubjectKey::github_repository("github.com", "acme", repo),
        state: FactState::Present { facts },
    })
}

fn publish(w: &mut World, at: DateTime<Utc>, files: &[(&str, &str)]) -> Msg {
    Msg::Card(ScorecardEvent {
        event_id: w.id(),
        source: SourceId::new("cards"),
        at,
        by: None,
        change: ScorecardChange::DefinitionsPublished {
            files: files
                .iter()
                .map(|(f, t)| (f.to_string(), t.to_string()))
                .collect(),
        },
    })
}

/// (level, score) of a component under `t`.
fn level(w: &World, name: &str) -> Option<(Option<usize>, u32)> {
    w.catalog()
        .scorecard_result("t", &format!("component:default/{name}"))
        .unwrap()
        .map(|r| (r.level, r.score))
}

/// (entities, entities per level) of one rollup group.
fn rollup(w: &World, by: RollupBy, group: &str) -> Option<(i64, Vec<i64>)> {
    let (_, def) = w.catalog().scorecard("t").unwrap().unwrap();
    let view = w.catalog().scorecard_rollup(&def, by).unwrap();
    view.groups.iter().find(|g| g.group == group).map(|g| {
        (
            g.entities,
            g.levels.iter().map(|l| l.entities).collect::<Vec<_>>(),
        )
    })
}

fn base(w: &mut World) -> Vec<Msg> {
    let at = t0();
    vec![
        publish(w, at, &[("t.yaml", CARD)]),
        located(
            w,
            "groups",
            at,
            vec![
                group("g1", Some("p1")),
                group("p1", None),
                group("p2", None),
            ],
        ),
        located(w, "sys", at, vec![system("s", None)]),
        located(w, "c1", at, vec![component("c1", "g1", Some("s"))]),
    ]
}

#[test]
fn related_entity_and_fact_changes_reevaluate_dependents() {
    let mut w = World::new();
    let b = base(&mut w);
    apply(w.store.as_ref(), &b);
    assert_eq!(level(&w, "c1"), Some((Some(0), 40)));
    // The system gains a domain: the component reads it, so it moves.
    let day = t0() + Duration::days(1);
    let m = located(&mut w, "sys", day, vec![system("s", Some("d"))]);
    apply(w.store.as_ref(), &[m]);
    assert_eq!(level(&w, "c1"), Some((Some(1), 60)));
    let result = w
        .catalog()
        .scorecard_result("t", "component:default/c1")
        .unwrap()
        .unwrap();
    let h = w
        .catalog()
        .scorecard_history("t", "component:default/c1")
        .unwrap();
    assert_eq!(h.last().unwrap().cause.detail, "system:default/s");
    assert_eq!(result.domain.as_deref(), Some("domain:default/d"));
    // Facts arrive: gold. Fewer reviews: back to silver.
    let m = facts(&mut w, "c1", day, 2, day - Duration::days(3));
    apply(w.store.as_ref(), &[m]);
    assert_eq!(level(&w, "c1"), Some((Some(2), 100)));
    let m = facts(&mut w, "c1", day, 1, day - Duration::days(3));
    apply(w.store.as_ref(), &[m]);
    assert_eq!(level(&w, "c1"), Some((Some(1), 80)));
    let card = &w
        .catalog()
        .entity_cards("component:default/c1", 10)
        .unwrap()[0];
    let reviews = &card.checks[2];
    assert_eq!(reviews.value, Some(json!(1)));
    assert!(
        reviews.reason.as_deref().unwrap().contains(">= 2"),
        "{reviews:?}"
    );
    // Newest first: facts (fewer reviews), facts, related, first evaluation.
    let kinds: Vec<_> = card
        .history
        .iter()
        .map(|h| serde_json::to_value(h.cause.kind).unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            json!("fact"),
            json!("fact"),
            json!("related"),
            json!("definition")
        ]
    );
}

#[test]
fn a_group_moving_moves_the_rollups_of_what_it_owns() {
    let mut w = World::new();
    let b = base(&mut w);
    apply(w.store.as_ref(), &b);
    assert_eq!(
        rollup(&w, RollupBy::Owner, "group:default/g1").unwrap().0,
        1
    );
    assert_eq!(
        rollup(&w, RollupBy::Owner, "group:default/p1").unwrap().0,
        1
    );
    assert!(rollup(&w, RollupBy::Owner, "group:default/p2").is_none());
    let m = located(
        &mut w,
        "groups",
        t0() + Duration::hours(1),
        vec![
            group("g1", Some("p2")),
            group("p1", None),
            group("p2", None),
        ],
    );
    apply(w.store.as_ref(), &[m]);
    assert!(rollup(&w, RollupBy::Owner, "group:default/p1").is_none());
    assert_eq!(
        rollup(&w, RollupBy::Owner, "group:default/p2").unwrap().0,
        1
    );
    assert_eq!(rollup(&w, RollupBy::All, "*").unwrap().0, 1);
}

/// A mixed sequence of changes over 12 components, 3 groups, 2 systems.
fn churn(w: &mut World) -> Vec<Msg> {
    churn_every(w, Duration::minutes(1))
}

/// [`churn`] with its 120 changes `step` apart.
fn churn_every(w: &mut World, step: Duration) -> Vec<Msg> {
    let mut out = base(w);
    let mut x: u64 = 7;
    for i in 0..120 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let at = t0() + step * i;
        let n = (x >> 33) % 12;
        let name = format!("c{n}");
        let owner = ["g1", "p1", "p2"][((x >> 20) % 3) as usize];
        let sys = [None, Some("s"), Some("s2")][((x >> 40) % 3) as usize];
        let m = match (x >> 50) % 6 {
            0 => located(w, &name, at, vec![]),
            // Pushes in the future of every evaluation: age rules do not depend
            // on when a store evaluates, so the stores can be compared.
            1 => facts(
                w,
                &name,
                at,
                ((x >> 10) % 3) as u32,
                t0() + Duration::days(100 + ((x >> 5) % 40) as i64),
            ),
            2 => located(
                w,
                "sys",
                at,
                vec![system("s", [None, Some("d")][((x >> 8) % 2) as usize])],
            ),
            3 => located(
                w,
                "groups",
                at,
                vec![
                    group(
                        "g1",
                        [Some("p1"), Some("p2"), None][((x >> 9) % 3) as usize],
                    ),
                    group("p1", None),
                    group("p2", None),
                ],
            ),
            _ => located(w, &name, at, vec![component(&name, owner, sys)]),
        };
        out.push(m);
    }
    out.push(located(w, "sys2", t0(), vec![system("s2", Some("d2"))]));
    out
}

fn table(store: &MemStore, table: u8) -> BTreeMap<Vec<u8>, Value> {
    store
        .dump()
        .into_iter()
        .filter(|(k, _)| k[0] == table)
        .map(|(k, v)| {
            let value = match v.split_first() {
                // Results are stored compact: read them as their fields.
                _ if table == b'A' => serde_json::to_value(
                    projector::scorecard::ResultRecord::decode(&k, &v).unwrap(),
                )
                .unwrap(),
                Some((_, rest)) => serde_json::from_slice(rest).unwrap(),
                None => Value::Null,
            };
            (k, value)
        })
        .collect()
}

/// Results without their bookkeeping (when and why they last changed).
fn outcomes(store: &MemStore) -> BTreeMap<Vec<u8>, Value> {
    table(store, b'A')
        .into_iter()
        .map(|(k, mut v)| {
            let o = v.as_object_mut().unwrap();
            o.remove("changed_at");
            o.remove("cause");
            (k, v)
        })
        .collect()
}

#[test]
fn incremental_rollups_equal_a_rebuild_and_replay_is_deterministic() {
    let mut w = World::new();
    let msgs = churn(&mut w);
    // One message per batch.
    let one = MemStore::new();
    for m in &msgs {
        apply(&one, std::slice::from_ref(m));
    }
    // Everything in one batch.
    let all = MemStore::new();
    apply(&all, &msgs);
    // The definition last: a full evaluation builds the rollups from scratch.
    let late = MemStore::new();
    apply(&late, &msgs[1..]);
    let mut w2 = World::new();
    w2.next = 10_000;
    let p = publish(&mut w2, t0() + Duration::days(1), &[("t.yaml", CARD)]);
    apply(&late, &[p]);
    assert!(!table(&one, b'K').is_empty());
    assert_eq!(table(&one, b'K'), table(&all, b'K'));
    assert_eq!(table(&one, b'K'), table(&late, b'K'));
    assert_eq!(outcomes(&one), outcomes(&all));
    assert_eq!(outcomes(&one), outcomes(&late));
    assert_eq!(table(&one, b'D'), table(&late, b'D'));
    // The level index holds exactly the results' levels.
    for store in [&one, &all, &late] {
        let expected: Vec<Vec<u8>> = table(store, b'A')
            .iter()
            .map(|(k, v)| {
                let r = std::str::from_utf8(&k[3..]).unwrap();
                let level = v["level"].as_u64().map(|l| l as usize);
                projector::scorecard::records::by_level("t", level, r)
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let index: Vec<Vec<u8>> = table(store, b'V').into_keys().collect();
        assert!(!index.is_empty());
        assert_eq!(index, expected);
    }
    // Replaying the same messages in the same batches gives the same bytes.
    let again = MemStore::new();
    for m in &msgs {
        apply(&again, std::slice::from_ref(m));
    }
    assert_eq!(one.dump(), again.dump());
}

#[test]
fn age_rules_and_exemptions_come_due() {
    let mut w = World::new();
    let mut b = base(&mut w);
    b.push(located(&mut w, "sys", t0(), vec![system("s", Some("d"))]));
    b.push(facts(&mut w, "c1", t0(), 2, t0() - Duration::days(20)));
    apply(w.store.as_ref(), &b);
    assert_eq!(level(&w, "c1"), Some((Some(2), 100)));
    let result = w
        .catalog()
        .scorecard_result("t", "component:default/c1")
        .unwrap()
        .unwrap();
    let deadline = t0() + Duration::days(10);
    assert_eq!(result.next_change, Some(deadline));
    // Not yet due.
    assert_eq!(
        projector::run::apply_due(w.store.as_ref(), deadline - Duration::seconds(1)).unwrap(),
        0
    );
    assert_eq!(level(&w, "c1"), Some((Some(2), 100)));
    // Due: evaluated as of the deadline, recorded with that time.
    assert_eq!(
        projector::run::apply_due(w.store.as_ref(), deadline + Duration::days(2)).unwrap(),
        1
    );
    assert_eq!(level(&w, "c1"), Some((Some(1), 80)));
    let h = w
        .catalog()
        .scorecard_history("t", "component:default/c1")
        .unwrap();
    let last = h.last().unwrap();
    assert_eq!(last.at, deadline);
    assert_eq!(serde_json::to_value(last.cause.kind).unwrap(), "time");
    assert_eq!(
        projector::run::apply_due(w.store.as_ref(), deadline + Duration::days(3)).unwrap(),
        0
    );
    // An exemption of the failing check, expiring in an hour.
    let granted_at = deadline + Duration::days(3);
    let ex = Exemption {
        id: Uuid::from_u128(777),
        scorecard: "t".into(),
        entity: r("component", "c1"),
        check: "fresh".into(),
        reason: "archived soon".into(),
        author: "ann".into(),
        expires_at: Some(granted_at + Duration::hours(1)),
    };
    let m = Msg::Card(ScorecardEvent {
        event_id: w.id(),
        source: SourceId::new("api"),
        at: granted_at,
        by: None,
        change: ScorecardChange::ExemptionGranted {
            exemption: ex.clone(),
        },
    });
    apply(w.store.as_ref(), &[m]);
    assert_eq!(level(&w, "c1"), Some((Some(2), 100)));
    assert_eq!(
        projector::run::apply_due(w.store.as_ref(), granted_at + Duration::hours(2)).unwrap(),
        1
    );
    assert_eq!(level(&w, "c1"), Some((Some(1), 80)));
    // Granted again after it expired: already over, it does not count.
    let mut again = ex.clone();
    again.id = Uuid::from_u128(778);
    let m = Msg::Card(ScorecardEvent {
        event_id: w.id(),
        source: SourceId::new("api"),
        at: granted_at + Duration::hours(3),
        by: None,
        change: ScorecardChange::ExemptionGranted { exemption: again },
    });
    apply(w.store.as_ref(), &[m]);
    assert_eq!(level(&w, "c1"), Some((Some(1), 80)));
    assert_eq!(w.catalog().exemptions("t").unwrap().len(), 2);
}

#[test]
fn definitions_replaced_rejected_and_removed() {
    let mut w = World::new();
    let b = base(&mut w);
    apply(w.store.as_ref(), &b);
    assert_eq!(level(&w, "c1"), Some((Some(0), 40)));
    // A stricter first level: every entity is evaluated again.
    let stricter = CARD.replace("target_kind: group}", "target_kind: user}");
    let m = publish(&mut w, t0() + Duration::hours(1), &[("t.yaml", &stricter)]);
    apply(w.store.as_ref(), &[m]);
    assert_eq!(level(&w, "c1"), Some((None, 0)));
    assert_eq!(rollup(&w, RollupBy::All, "*").unwrap().1, vec![1, 0, 0, 0]);
    // A broken text: rejected with file, check and reason; the last good
    // text stays in force.
    let broken = CARD.replace("gte: 2", "gte: two");
    let m = publish(&mut w, t0() + Duration::hours(2), &[("t.yaml", &broken)]);
    apply(w.store.as_ref(), &[m]);
    let rejected = w.catalog().rejected_definitions().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].errors[0].check.as_deref(), Some("reviews"));
    assert!(
        rejected[0].errors[0].reason.contains("takes a number"),
        "{rejected:?}"
    );
    assert_eq!(rejected[0].in_force.as_deref(), Some("t"));
    assert_eq!(level(&w, "c1"), Some((None, 0)));
    // The file goes: results and rollups go; history keeps the ending.
    let m = publish(&mut w, t0() + Duration::hours(3), &[]);
    apply(w.store.as_ref(), &[m]);
    assert!(w.catalog().scorecard("t").unwrap().is_none());
    assert!(table(&w.store, b'A').is_empty());
    assert!(table(&w.store, b'K').is_empty());
    assert!(table(&w.store, b'D').is_empty());
    let h = w
        .catalog()
        .scorecard_history("t", "component:default/c1")
        .unwrap();
    assert!(!h.last().unwrap().applies);
}

#[test]
fn trend_counts_each_day_from_history() {
    let mut w = World::new();
    let b = base(&mut w);
    apply(w.store.as_ref(), &b);
    // Two days later, in the afternoon, the system gets its domain.
    let later = t0() + Duration::days(2) + Duration::hours(5);
    let m = located(&mut w, "sys", later, vec![system("s", Some("d"))]);
    apply(w.store.as_ref(), &[m]);
    let (_, def) = w.catalog().scorecard("t").unwrap().unwrap();
    let q = |interval, from, to| TrendQuery {
        by: RollupBy::Owner,
        group: Some("group:default/p1".into()),
        from,
        to,
        interval,
    };
    let day = w
        .catalog()
        .scorecard_trend(
            &def,
            &q(
                TrendInterval::Day,
                t0() - Duration::days(1),
                t0() + Duration::days(3),
            ),
        )
        .unwrap();
    let per_day: Vec<(String, Vec<i64>)> = day
        .iter()
        .map(|b| {
            (
                b.start.format("%m-%d").to_string(),
                b.groups
                    .first()
                    .map(|g| g.levels.iter().map(|l| l.entities).collect())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        per_day,
        vec![
            ("03-01".to_string(), vec![]),
            ("03-02".to_string(), vec![0, 1, 0, 0]),
            ("03-03".to_string(), vec![0, 1, 0, 0]),
            ("03-04".to_string(), vec![0, 0, 1, 0]),
            ("03-05".to_string(), vec![0, 0, 1, 0]),
        ]
    );
    // Weeks start on Monday (2026-03-02 is one).
    let week = w
        .catalog()
        .scorecard_trend(
            &def,
            &q(TrendInterval::Week, t0(), t0() + Duration::days(8)),
        )
        .unwrap();
    assert_eq!(week.len(), 2);
    assert_eq!(
        week[0].start,
        Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap()
    );
    assert_eq!(week[0].groups[0].mean_score, 60.0);
}

#[test]
fn cached_views_last_until_the_store_changes() {
    let mut w = World::new();
    let b = base(&mut w);
    apply(w.store.as_ref(), &b);
    let catalog = w.catalog();
    let renders = std::cell::Cell::new(0);
    let render = || {
        renders.set(renders.get() + 1);
        Ok::<_, ()>(format!("render {}", renders.get()).into_bytes())
    };
    let first = catalog.cached_view("k", render).unwrap();
    let again = catalog.cached_view("k", render).unwrap();
    assert_eq!(first, again);
    assert_eq!(renders.get(), 1);
    let m = located(
        &mut w,
        "sys",
        t0() + Duration::hours(1),
        vec![system("s", Some("d"))],
    );
    apply(w.store.as_ref(), &[m]);
    let after = catalog.cached_view("k", render).unwrap();
    assert_eq!(renders.get(), 2, "a write invalidates");
    assert_ne!(after, first);
}

#[test]
fn changes_at_one_time_keep_the_order_they_were_applied_in() {
    let mut w = World::new();
    let b = base(&mut w);
    apply(w.store.as_ref(), &b);
    assert_eq!(level(&w, "c1"), Some((Some(0), 40)));
    // The system gains its domain in a later batch of the same listing:
    // the same observed time, and an event id that sorts first.
    let mut m = located(&mut w, "sys", t0(), vec![system("s", Some("d"))]);
    if let Msg::Entity(e) = &mut m {
        e.event_id = Uuid::from_u128(0);
    }
    apply(w.store.as_ref(), &[m]);
    assert_eq!(level(&w, "c1"), Some((Some(1), 60)));
    let h = w
        .catalog()
        .scorecard_history("t", "component:default/c1")
        .unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h.last().unwrap().level_after.as_deref(), Some("silver"));
    let (_, def) = w.catalog().scorecard("t").unwrap().unwrap();
    let day = w
        .catalog()
        .scorecard_trend(
            &def,
            &TrendQuery {
                by: RollupBy::All,
                group: None,
                from: t0(),
                to: t0(),
                interval: TrendInterval::Day,
            },
        )
        .unwrap();
    assert_eq!(day[0].groups[0].levels[2].entities, 1, "counted at silver");
}

#[test]
fn relations_another_entity_emits_reevaluate_what_reads_them() {
    // A card reading `dependencyOf`, which only the dependents emit: the
    // hub's served JSON does not change when one comes, its relation rows
    // do, and that must still re-evaluate it.
    const DEPS: &str = "id: deps
applies_to: {kind: component}
levels: [bronze]
checks:
  - id: used
    level: bronze
    rule: {relation: dependencyOf, target_kind: component}
";
    let mut w = World::new();
    let at = t0();
    let hub = component("hub", "g1", None);
    let batch = vec![
        publish(&mut w, at, &[("deps.yaml", DEPS)]),
        located(&mut w, "hub", at, vec![hub]),
    ];
    apply(w.store.as_ref(), &batch);
    let used = |w: &World| {
        w.catalog()
            .scorecard_result("deps", "component:default/hub")
            .unwrap()
            .map(|r| r.level)
    };
    assert_eq!(used(&w), Some(None), "no dependent yet");
    let mut user = component("user", "g1", None);
    let me = user.entity.entity_ref();
    user.relations
        .extend(rel(&me, RelationType::DependsOn, r("component", "hub")));
    let m = located(&mut w, "user", at + Duration::hours(1), vec![user]);
    apply(w.store.as_ref(), &[m]);
    assert_eq!(used(&w), Some(Some(0)), "the dependent is seen");
    let m = located(&mut w, "user", at + Duration::hours(2), vec![]);
    apply(w.store.as_ref(), &[m]);
    assert_eq!(used(&w), Some(None), "and its going");
}

/// A store that sets `stop` once it has taken `after` writes, as a SIGTERM
/// arriving between two of them would, and counts them; and counts scans
/// of result history (how the end of a result's history is read).
struct Stopping {
    inner: Arc<MemStore>,
    writes: std::sync::atomic::AtomicUsize,
    after: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
    seeks: std::sync::atomic::AtomicUsize,
}

impl Stopping {
    /// One that never stops.
    fn counting() -> Self {
        Stopping {
            inner: Arc::new(MemStore::new()),
            writes: Default::default(),
            after: usize::MAX,
            stop: Default::default(),
            seeks: Default::default(),
        }
    }
}

impl Store for Stopping {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, projector::StoreError> {
        self.inner.get(key)
    }
    fn scan(
        &self,
        prefix: &[u8],
        from: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), projector::StoreError> {
        if prefix.first() == Some(&b'a') {
            self.seeks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.inner.scan(prefix, from, visit)
    }
    fn write(&self, changes: projector::WriteSet) -> Result<(), projector::StoreError> {
        self.inner.write(changes)?;
        let n = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if n >= self.after {
            self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }
    fn version(&self) -> u64 {
        self.inner.version()
    }
}

/// The messages as records of their topics, numbered per topic.
fn records(msgs: &[Msg]) -> Vec<eventlog::Record> {
    use proto::Versioned;
    let mut next: BTreeMap<&str, i64> = BTreeMap::new();
    msgs.iter()
        .map(|m| {
            let (topic, key, value) = match m {
                Msg::Entity(e) => (
                    proto::topics::ENTITIES,
                    e.location.as_str().to_string(),
                    e.encode(),
                ),
                Msg::Facts(f) => (
                    proto::topics::FACTS,
                    f.subject.as_str().to_string(),
                    f.encode(),
                ),
                Msg::Card(c) => (proto::topics::SCORECARDS, c.source.to_string(), c.encode()),
            };
            let offset = next.entry(topic).or_default();
            *offset += 1;
            eventlog::Record {
                topic: topic.to_string(),
                partition: 0,
                offset: *offset - 1,
                key: key.into_bytes(),
                value,
                timestamp_ms: 0,
                next: *offset,
            }
        })
        .collect()
}

#[test]
fn a_scorecard_evaluated_in_parts_stopped_and_replayed_is_what_one_write_leaves() {
    let mut w = World::new();
    let mut msgs = base(&mut w);
    let at = t0() + Duration::minutes(1);
    let owners = ["g1", "p1", "p2"];
    // Locations of 5 components: each under a part of 7 refs, so only the
    // scorecard is written in parts.
    for l in 0..8 {
        let comps: Vec<ProcessedEntity> = (l * 5..l * 5 + 5)
            .map(|i| {
                component(
                    &format!("m{i:02}"),
                    owners[i % 3],
                    (i % 2 == 0).then_some("s"),
                )
            })
            .collect();
        msgs.push(located(&mut w, &format!("many{l}"), at, comps));
    }
    for i in (0..40).step_by(3) {
        msgs.push(facts(
            &mut w,
            &format!("m{i:02}"),
            at,
            (i % 4) as u32,
            t0() + Duration::days(200),
        ));
    }
    // Redefined (every result changes), then an entity after it, then the
    // card removed (every result goes), then another entity.
    let stricter = CARD
        .replace("weight: 2", "weight: 5")
        .replace("gte: 2", "gte: 1");
    msgs.push(publish(
        &mut w,
        t0() + Duration::hours(1),
        &[("t.yaml", &stricter)],
    ));
    msgs.push(located(
        &mut w,
        "late",
        t0() + Duration::hours(1),
        vec![component("z1", "g1", None)],
    ));
    msgs.push(publish(&mut w, t0() + Duration::hours(2), &[]));
    msgs.push(located(
        &mut w,
        "later",
        t0() + Duration::hours(2),
        vec![component("z2", "p1", None)],
    ));
    let batch = records(&msgs);
    let log = eventlog::memory::MemoryLog::new(&proto::topics::ALL, 1);
    let running = std::sync::atomic::AtomicBool::new(false);

    // One batch, each scorecard evaluated in one write.
    let witness = Arc::new(MemStore::new());
    let mut offsets = projector::run::Offsets::new();
    let applied = projector::run::apply_batch(
        &log,
        witness.as_ref(),
        &batch,
        &mut offsets,
        1_000,
        &running,
    )
    .unwrap();
    assert_eq!(applied, projector::run::Applied::Changed);
    let catalog = Catalog::new(witness.clone());
    assert!(
        catalog.scorecard("t").unwrap().is_none(),
        "the card is gone at the end"
    );
    let history = catalog
        .scorecard_history("t", "component:default/m07")
        .unwrap();
    assert_eq!(
        history.len(),
        3,
        "published, redefined, removed: {history:?}"
    );

    // In parts of 7 results, stopped after a few parts of the redefinition,
    // then after a few parts of the removal, then to the end.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut store = Stopping {
        inner: Arc::new(MemStore::new()),
        writes: Default::default(),
        // The first definition (no entities yet) and everything up to the
        // redefinition are one write each; then two parts.
        after: 4,
        stop: stop.clone(),
        seeks: Default::default(),
    };
    let mut offsets = projector::run::Offsets::new();
    let mut runs = Vec::new();
    loop {
        let rest: Vec<eventlog::Record> = batch
            .iter()
            .filter(|r| r.offset >= offsets.get(&(r.topic.clone(), 0)).copied().unwrap_or(0))
            .cloned()
            .collect();
        let applied =
            projector::run::apply_batch(&log, &store, &rest, &mut offsets, 7, &stop).unwrap();
        let stored = Catalog::new(store.inner.clone()).offsets().unwrap();
        assert_eq!(offsets, stored, "the caller keeps only the offsets written");
        runs.push((
            applied,
            stored
                .get(&(proto::topics::SCORECARDS.to_string(), 0))
                .copied(),
        ));
        if applied != projector::run::Applied::Abandoned {
            break;
        }
        // Results of the parts written are in the store; the definition
        // in force is still the one before.
        stop.store(false, std::sync::atomic::Ordering::SeqCst);
        store.writes = Default::default();
        store.after = 8;
    }
    let stops = |offset| runs.contains(&(projector::run::Applied::Abandoned, Some(offset)));
    assert!(
        stops(1) && stops(2),
        "stopped within the redefinition, then within the removal (each left at its own offset): {runs:?}"
    );
    assert_eq!(
        runs.last(),
        Some(&(projector::run::Applied::Changed, Some(3)))
    );
    let got = projector::postings::canonical(store.inner.dump());
    let want = projector::postings::canonical(witness.dump());
    let differ: Vec<String> = got
        .keys()
        .chain(want.keys())
        .filter(|k| got.get(*k) != want.get(*k))
        .map(|k| {
            format!(
                "{}: {:?} / {:?}",
                String::from_utf8_lossy(k),
                got.get(k).map(|v| String::from_utf8_lossy(v).into_owned()),
                want.get(k).map(|v| String::from_utf8_lossy(v).into_owned())
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "evaluated in parts, stopped and replayed, the store is what whole evaluations write; \
         these keys differ (parts / whole):\n{}",
        differ.join("\n")
    );
}

#[test]
fn a_group_no_longer_served_ends_the_owner_chain_though_its_parent_still_names_it() {
    let mut w = World::new();
    // `top` lists `mid` among its children, so the row `mid childOf top`
    // is emitted by `top` too and outlives `mid`'s own location.
    let top = processed(
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Group",
               "metadata": {"name": "top"}, "spec": {"type": "team", "children": ["mid"]}}),
        &[(RelationType::ParentOf, r("group", "mid"))],
    );
    let mut c1 = component("c1", "mid", None);
    let msgs = [
        publish(&mut w, t0(), &[("t.yaml", CARD)]),
        located(&mut w, "top", t0(), vec![top]),
        located(&mut w, "mid", t0(), vec![group("mid", None)]),
        located(&mut w, "c", t0(), vec![c1.clone()]),
    ];
    for m in &msgs {
        apply(w.store.as_ref(), std::slice::from_ref(m));
    }
    let owners = |w: &World| {
        (
            rollup(w, RollupBy::Owner, "group:default/mid").map(|r| r.0),
            rollup(w, RollupBy::Owner, "group:default/top").map(|r| r.0),
        )
    };
    assert_eq!(owners(&w), (Some(1), Some(1)), "mid, then its parent");
    // `mid` goes; then `c1` changes alone, so its owner is read from the
    // store, where `mid` is not served though its row to `top` is.
    let gone = located(&mut w, "mid", t0() + Duration::minutes(1), vec![]);
    apply(w.store.as_ref(), std::slice::from_ref(&gone));
    c1.entity.metadata.description = Some("changed".into());
    let changed = located(&mut w, "c", t0() + Duration::minutes(2), vec![c1]);
    apply(w.store.as_ref(), std::slice::from_ref(&changed));
    assert_eq!(owners(&w), (Some(1), None), "the chain ends at mid");
}

#[test]
fn a_large_scorecard_evaluated_whole_on_two_threads_equals_one_entity_at_a_time() {
    // Enough components for three chunks, each split between two threads
    // (the helper's caches then answer for some of them) and stored while
    // the next is evaluated, with owners, systems, domains and facts to
    // read.
    const N: usize = 5_000;
    let mut w = World::new();
    let at = t0();
    let mut entities = vec![
        located(
            &mut w,
            "groups",
            at,
            vec![
                group("g1", Some("p1")),
                group("p1", None),
                group("p2", Some("p1")),
            ],
        ),
        located(
            &mut w,
            "sys",
            at,
            vec![system("s", Some("d")), system("s2", None)],
        ),
    ];
    let owners = ["g1", "p1", "p2"];
    let systems = [Some("s"), Some("s2"), None];
    for l in 0..N / 50 {
        let comps: Vec<ProcessedEntity> = (l * 50..l * 50 + 50)
            .map(|i| component(&format!("c{i:04}"), owners[i % 3], systems[i % 5 % 3]))
            .collect();
        entities.push(located(&mut w, &format!("c{l}"), at, comps));
    }
    for i in (0..N).step_by(4) {
        entities.push(facts(
            &mut w,
            &format!("c{i:04}"),
            at,
            (i % 3) as u32,
            t0() + Duration::days(300),
        ));
    }
    let card = publish(&mut w, at, &[("t.yaml", CARD)]);
    // The card first: each entity evaluated as it comes.
    let first = MemStore::new();
    apply(&first, std::slice::from_ref(&card));
    for m in &entities {
        apply(&first, std::slice::from_ref(m));
    }
    // The card last: all evaluated in one go, written at once, and in parts
    // of 700 results.
    let last = MemStore::new();
    // Counting its reads of result history: none is needed, as every
    // result is new, in the parts after the first too.
    let parted = Stopping::counting();
    projector::scorecard::step::complete_history_ends(&parted).unwrap();
    for m in &entities {
        apply(&last, std::slice::from_ref(m));
        apply(&parted, std::slice::from_ref(m));
    }
    apply(&last, std::slice::from_ref(&card));
    let Msg::Card(card) = card else {
        unreachable!()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut fold = Fold::new(&parted);
    fold.evaluate_in_parts(700, &stop);
    fold.apply_scorecard(&card).unwrap();
    let rest = fold.finish().unwrap();
    assert!(rest.len() < N, "most results were written in parts");
    parted.write(rest).unwrap();
    assert_eq!(
        parted.seeks.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "no result's history read (one pass, marking the store)"
    );
    assert_eq!(table(&first, b'A').len(), N);
    for (store, how) in [(&last, "at once"), (&*parted.inner, "in parts")] {
        assert!(outcomes(&first) == outcomes(store), "results {how}");
        assert_eq!(table(&first, b'K'), table(store, b'K'), "rollups {how}");
        assert!(
            table(&first, b'D') == table(store, b'D'),
            "dependencies {how}"
        );
    }
    assert!(table(&last, b'a') == table(&parted.inner, b'a'), "history");
}

/// 120 changes 7 hours apart, one batch each: five weeks of owners,
/// systems and domains moving, entities coming and going.
fn five_weeks_of_churn() -> (Catalog, Arc<projector::scorecard::lang::Definition>) {
    let mut w = World::new();
    for m in &churn_every(&mut w, Duration::hours(7)) {
        apply(w.store.as_ref(), std::slice::from_ref(m));
    }
    let catalog = w.catalog();
    let (_, def) = catalog.scorecard("t").unwrap().unwrap();
    (catalog, def)
}

#[test]
fn a_trend_counts_each_interval_as_the_rollups_at_its_end() {
    let (catalog, def) = five_weeks_of_churn();
    let mut compared = 0;
    for by in [
        RollupBy::All,
        RollupBy::Owner,
        RollupBy::System,
        RollupBy::Domain,
    ] {
        for (interval, group) in [
            (TrendInterval::Day, None),
            (TrendInterval::Week, None),
            (TrendInterval::Day, Some("group:default/p1")),
        ] {
            let q = TrendQuery {
                by,
                group: group.map(str::to_string),
                from: t0() - Duration::days(1),
                to: t0() + Duration::days(40),
                interval,
            };
            for bucket in catalog.scorecard_trend(&def, &q).unwrap() {
                let at = catalog
                    .scorecard_rollups_at(&def, by, group, bucket.end.timestamp_millis() - 1, false)
                    .unwrap();
                assert_eq!(
                    serde_json::to_value(&bucket.groups).unwrap(),
                    serde_json::to_value(&at.groups).unwrap(),
                    "{by:?} {interval:?} {group:?} ending {}",
                    bucket.end
                );
                compared += bucket.groups.len();
            }
        }
    }
    assert!(compared > 100, "{compared} group counts compared");
}

#[test]
fn the_scorecard_levels_metric_counts_each_interval_as_the_rollups_at_its_end() {
    use projector::adoption::{Dimension, Interval, buckets, scorecard_levels};
    let (catalog, def) = five_weeks_of_churn();
    let store = catalog.store();
    let mut compared = 0;
    for (dim, by) in [
        (Dimension::All, RollupBy::All),
        (Dimension::Owner, RollupBy::Owner),
        (Dimension::System, RollupBy::System),
        (Dimension::Domain, RollupBy::Domain),
    ] {
        for interval in [Interval::Day, Interval::Week] {
            let intervals = buckets(
                t0() - Duration::days(1),
                t0() + Duration::days(40),
                interval,
            );
            let series = scorecard_levels(store.as_ref(), &intervals, dim, &def).unwrap();
            let value = |key: &str, measure: &str, b: usize| {
                series
                    .iter()
                    .find(|s| s.key == key && s.measure == measure)
                    .map_or(0.0, |s| s.values[b])
            };
            for (b, interval) in intervals.iter().enumerate() {
                let at = catalog
                    .scorecard_rollups_at(&def, by, None, interval.end.timestamp_millis() - 1, true)
                    .unwrap();
                let mut keys: Vec<String> = series
                    .iter()
                    .filter(|s| s.measure == "entities" && s.values[b] > 0.0)
                    .map(|s| s.key.clone())
                    .collect();
                keys.sort();
                let mut want: Vec<String> = at
                    .groups
                    .iter()
                    .map(|g| {
                        if g.group == "*" {
                            "all".into()
                        } else {
                            g.group.clone()
                        }
                    })
                    .collect();
                want.sort();
                assert_eq!(keys, want, "{dim:?} {interval:?}: groups with entities");
                for g in &at.groups {
                    let key = if g.group == "*" {
                        "all"
                    } else {
                        g.group.as_str()
                    };
                    let entities = g.entities as f64;
                    assert_eq!(value(key, "entities", b), entities);
                    for l in &g.levels {
                        let name = format!("level:{}", l.level.as_deref().unwrap_or("(none)"));
                        assert_eq!(value(key, &name, b), l.entities as f64, "{key} {name}");
                    }
                    for c in &g.checks {
                        let rate = value(key, &format!("pass_rate:{}", c.id), b);
                        assert_eq!(
                            (rate * entities).round() as i64,
                            c.passing + c.exempt,
                            "{key} {}",
                            c.id
                        );
                    }
                    assert!((value(key, "mean_score", b) - g.mean_score).abs() < 0.01);
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 100, "{compared} group counts compared");
}

#[test]
fn where_a_history_ends_spares_reading_it_and_changes_no_record() {
    use projector::scorecard::step::complete_history_ends;
    let mut w = World::new();
    let mut msgs = churn(&mut w);
    let reweighed = CARD.replace("weight: 2", "weight: 3");
    // A redefinition stamped before the latest changes (each result's
    // history must be read), one after them (none need be), then a change
    // stamped before both.
    msgs.push(publish(
        &mut w,
        t0() + Duration::minutes(30),
        &[("t.yaml", &reweighed)],
    ));
    msgs.push(publish(
        &mut w,
        t0() + Duration::days(1),
        &[("t.yaml", CARD)],
    ));
    msgs.push(located(&mut w, "c3", t0() + Duration::minutes(5), vec![]));
    let (marked, plain) = (Stopping::counting(), Stopping::counting());
    assert_eq!(
        complete_history_ends(&marked).unwrap(),
        0,
        "nothing to mark"
    );
    let reads = |s: &Stopping| s.seeks.load(std::sync::atomic::Ordering::Relaxed);
    let mut spared = false;
    for m in &msgs {
        let before = (reads(&marked), reads(&plain));
        apply(&marked, std::slice::from_ref(m));
        apply(&plain, std::slice::from_ref(m));
        assert!(reads(&marked) - before.0 <= reads(&plain) - before.1);
        spared |= reads(&marked) - before.0 < reads(&plain) - before.1;
    }
    assert!(spared, "the ends spared some reads");
    let history = |s: &Stopping| table(&s.inner, b'a');
    assert!(history(&plain).len() > 100);
    assert!(
        history(&marked) == history(&plain),
        "the same history records, read or not"
    );
    // Kept as a batch goes, the ends are what one pass over the history
    // finds.
    let ends = |s: &Stopping| -> BTreeMap<Vec<u8>, Vec<u8>> {
        s.inner
            .dump()
            .into_iter()
            .filter(|(k, _)| k[0] == b'k')
            .collect()
    };
    assert_eq!(complete_history_ends(&plain).unwrap(), 1);
    assert_eq!(complete_history_ends(&plain).unwrap(), 0, "once");
    assert_eq!(ends(&marked), ends(&plain));
    let end = ends(&marked)[b"kt".as_slice()].clone();
    let newest = history(&marked)
        .keys()
        .map(|k| k[k.len() - 26..k.len() - 18].to_vec())
        .max();
    assert_eq!(Some(end), newest);
}
