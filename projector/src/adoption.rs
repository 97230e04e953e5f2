//! Adoption metrics over time, computed from history rather than from
//! snapshots taken on a schedule: the served versions (table `P`, see
//! [`crate::asof`]) give every entity's state at every instant, the change
//! feed (table `N`) every change.
//!
//! A series' value for an interval is the state at the interval's end (for
//! counts of entities) or what happened within it (for changes). One pass
//! over the versions fills every interval at once: a version counts in the
//! intervals whose ends fall between it and the ref's next version, added
//! with a difference array, and its body is parsed only when it counts in
//! at least one.

use crate::feed::FeedRecord;
use crate::keys;
use crate::read::EntityFilter;
use crate::records;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// The metrics computed here (the route's `{metric}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Entities,
    OwnershipCoverage,
    Changes,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Entities, Metric::OwnershipCoverage, Metric::Changes];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Entities => "entities",
            Metric::OwnershipCoverage => "ownership-coverage",
            Metric::Changes => "changes",
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// Computes `metric` over `buckets`.
pub fn compute(
    store: &dyn Store,
    metric: Metric,
    buckets: &[Bucket],
    dim: Dimension,
    filter: Option<&EntityFilter>,
) -> Result<Vec<Series>, StoreError> {
    match metric {
        Metric::Entities => entities(store, buckets, dim, filter),
        Metric::OwnershipCoverage => ownership(store, buckets, dim, filter),
        Metric::Changes => changes(store, buckets, dim),
    }
}

/// Intervals one request may ask for.
pub const MAX_BUCKETS: usize = 1000;

/// The length of one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Day,
    Week,
    Month,
}

impl Interval {
    pub fn parse(s: &str) -> Option<Interval> {
        match s {
            "day" => Some(Interval::Day),
            "week" => Some(Interval::Week),
            "month" => Some(Interval::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }
}

/// One interval: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The intervals from the one holding `from` to the one holding `to`: days
/// from midnight UTC, weeks from Monday, months from the first; at most
/// [`MAX_BUCKETS`].
pub fn buckets(from: DateTime<Utc>, to: DateTime<Utc>, interval: Interval) -> Vec<Bucket> {
    let midnight = |t: DateTime<Utc>| {
        Utc.with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0)
            .single()
            .unwrap_or(t)
    };
    let first_of_month = |y: i32, m: u32| Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single();
    let mut start = match interval {
        Interval::Day => midnight(from),
        Interval::Week => {
            midnight(from) - Duration::days(i64::from(from.weekday().num_days_from_monday()))
        }
        Interval::Month => first_of_month(from.year(), from.month()).unwrap_or(from),
    };
    let mut out = Vec::new();
    while start <= to && out.len() < MAX_BUCKETS {
        let end = match interval {
            Interval::Day => start + Duration::days(1),
            Interval::Week => start + Duration::weeks(1),
            Interval::Month => {
                let (y, m) = if start.month() == 12 {
                    (start.year() + 1, 1)
                } else {
                    (start.year(), start.month() + 1)
                };
                match first_of_month(y, m) {
                    Some(e) => e,
                    None => break,
                }
            }
        };
        out.push(Bucket { start, end });
        start = end;
    }
    out
}

/// What series are split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// One series, `all`.
    All,
    Kind,
    Type,
    Lifecycle,
    Tag,
    Owner,
    System,
    Domain,
    Namespace,
    /// Changes only: the source that observed them.
    Source,
    /// Changes only: the event type (`entity_updated`, ...).
    Change,
}

impl Dimension {
    pub fn parse(s: &str) -> Option<Dimension> {
        Some(match s {
            "all" => Dimension::All,
            "kind" => Dimension::Kind,
            "type" => Dimension::Type,
            "lifecycle" => Dimension::Lifecycle,
            "tag" => Dimension::Tag,
            "owner" => Dimension::Owner,
            "system" => Dimension::System,
            "domain" => Dimension::Domain,
            "namespace" => Dimension::Namespace,
            "source" => Dimension::Source,
            "change" => Dimension::Change,
            _ => return None,
        })
    }
}

/// The label of an entity without a value for the dimension.
pub const NONE: &str = "(none)";

/// The targets of a relation type in a served body, as ref keys.
pub fn related(body: &Value, relation: &str) -> Vec<String> {
    body.get("relations")
        .and_then(Value::as_array)
        .map(|rels| {
            rels.iter()
                .filter(|r| r.get("type").and_then(Value::as_str) == Some(relation))
                .filter_map(|r| r.get("targetRef").and_then(Value::as_str))
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

fn text(body: &Value, path: &[&str]) -> Option<String> {
    let mut v = body;
    for p in path {
        v = v.get(p)?;
    }
    v.as_str().map(str::to_owned)
}

/// The values of `dim` for an entity's served body (several for tags).
pub fn values_of(dim: Dimension, body: &Value) -> Vec<String> {
    let vals: Vec<String> = match dim {
        Dimension::All => return vec!["all".into()],
        Dimension::Kind => text(body, &["kind"])
            .map(|k| k.to_ascii_lowercase())
            .into_iter()
            .collect(),
        Dimension::Type => text(body, &["spec", "type"]).into_iter().collect(),
        Dimension::Lifecycle => text(body, &["spec", "lifecycle"]).into_iter().collect(),
        Dimension::Namespace => text(body, &["metadata", "namespace"]).into_iter().collect(),
        Dimension::Tag => body
            .pointer("/metadata/tags")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        Dimension::Owner => related(body, "ownedBy"),
        Dimension::System => related(body, "partOf")
            .into_iter()
            .filter(|r| r.starts_with("system:"))
            .collect(),
        Dimension::Domain => {
            let mut d: Vec<String> = related(body, "partOf")
                .into_iter()
                .filter(|r| r.starts_with("domain:"))
                .collect();
            if d.is_empty() {
                d.extend(text(body, &["spec", "domain"]));
            }
            d
        }
        Dimension::Source | Dimension::Change => Vec::new(),
    };
    if vals.is_empty() {
        vec![NONE.into()]
    } else {
        vals
    }
}

/// One series: `measure` of the entities (or changes) with `key` as their
/// value of the dimension, per interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub key: String,
    pub measure: &'static str,
    pub values: Vec<f64>,
}

/// A ref's versions: (time, served body or `None` when not served).
type Versions = Vec<(i64, Option<Vec<u8>>)>;

/// Calls `visit` with each ref's versions (oldest first; bodies only
/// `with_bodies`), in ref order.
pub(crate) fn each_ref(
    store: &dyn Store,
    prefix: &[u8],
    with_bodies: bool,
    visit: &mut dyn FnMut(&str, &Versions) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut current: Option<(Vec<u8>, Versions)> = None;
    let mut err = None;
    let mut flush = |c: Option<(Vec<u8>, Versions)>, err: &mut Option<StoreError>| {
        if let Some((r, versions)) = c
            && let Err(e) = visit(&String::from_utf8_lossy(&r), &versions)
        {
            *err = Some(e);
        }
    };
    store.scan(prefix, None, &mut |k, v| {
        let (Some(t), Some(r)) = (keys::version_time(k), k.get(1..k.len().saturating_sub(9)))
        else {
            return true;
        };
        if current.as_ref().is_none_or(|(cur, _)| cur.as_slice() != r) {
            flush(current.take(), &mut err);
            if err.is_some() {
                return false;
            }
            current = Some((r.to_vec(), Vec::new()));
        }
        let body = match records::decode_version(k, v) {
            Ok(b) => b.map(|b| if with_bodies { b.to_vec() } else { Vec::new() }),
            Err(e) => {
                err = Some(e);
                return false;
            }
        };
        if let Some((_, versions)) = current.as_mut() {
            versions.push((t, body));
        }
        true
    })?;
    flush(current, &mut err);
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The bucket indexes `[a, b)` whose end instant (state as of `end - 1 ms`)
/// sees a version valid from `from` until `until`.
fn covered(ends: &[i64], from: i64, until: Option<i64>) -> (usize, usize) {
    let a = ends.partition_point(|e| *e - 1 < from);
    let b = match until {
        Some(u) => ends.partition_point(|e| *e - 1 < u),
        None => ends.len(),
    };
    (a, b.max(a))
}

fn ends_ms(buckets: &[Bucket]) -> Vec<i64> {
    buckets.iter().map(|b| b.end.timestamp_millis()).collect()
}

fn parse(r: &str, body: &[u8]) -> Result<Value, StoreError> {
    serde_json::from_slice(body).map_err(|e| StoreError::Corrupt {
        key: format!("version of {r}"),
        reason: e.to_string(),
    })
}

/// Calls `visit(body, a, b)` for every served version of every ref that
/// the buckets `[a, b)` see.
fn each_seen(
    store: &dyn Store,
    buckets: &[Bucket],
    visit: &mut dyn FnMut(&str, &Value, usize, usize),
) -> Result<(), StoreError> {
    let ends = ends_ms(buckets);
    each_ref(store, &[keys::VERSION], true, &mut |r, versions| {
        for (i, (t, body)) in versions.iter().enumerate() {
            let Some(body) = body else { continue };
            let (a, b) = covered(&ends, *t, versions.get(i + 1).map(|v| v.0));
            if a < b {
                visit(r, &parse(r, body)?, a, b);
            }
        }
        Ok(())
    })
}

fn finish(diffs: BTreeMap<String, Vec<i64>>, measure: &'static str, n: usize) -> Vec<Series> {
    diffs
        .into_iter()
        .map(|(key, diff)| {
            let mut acc = 0i64;
            let values = diff[..n]
                .iter()
                .map(|d| {
                    acc += d;
                    acc as f64
                })
                .collect();
            Series {
                key,
                measure,
                values,
            }
        })
        .collect()
}

fn add(diffs: &mut BTreeMap<String, Vec<i64>>, key: String, a: usize, b: usize, n: usize) {
    let d = diffs.entry(key).or_insert_with(|| vec![0; n + 1]);
    d[a] += 1;
    d[b] -= 1;
}

/// `entities`: how many entities (matching `filter`) there were at the end
/// of each interval, by `dim`.
pub fn entities(
    store: &dyn Store,
    buckets: &[Bucket],
    dim: Dimension,
    filter: Option<&EntityFilter>,
) -> Result<Vec<Series>, StoreError> {
    let n = buckets.len();
    let mut diffs = BTreeMap::new();
    each_seen(store, buckets, &mut |_, body, a, b| {
        if filter.is_none_or(|f| f.matches(body)) {
            for key in values_of(dim, body) {
                add(&mut diffs, key, a, b, n);
            }
        }
    })?;
    Ok(finish(diffs, "entities", n))
}

/// `ownership-coverage`: of the entities matching `filter`, at the end of
/// each interval, how many were owned by a Group in the catalog then
/// (`owned`), how many had no owner or one not in the catalog then
/// (`orphaned`), all of them (`total`), and `owned / total` (`coverage`),
/// by `dim`.
pub fn ownership(
    store: &dyn Store,
    buckets: &[Bucket],
    dim: Dimension,
    filter: Option<&EntityFilter>,
) -> Result<Vec<Series>, StoreError> {
    let n = buckets.len();
    let ends = ends_ms(buckets);
    // Which buckets see each ref served (bodies not needed).
    let mut alive: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
    each_ref(store, &[keys::VERSION], false, &mut |r, versions| {
        for (i, (t, body)) in versions.iter().enumerate() {
            if body.is_some() {
                let (a, b) = covered(&ends, *t, versions.get(i + 1).map(|v| v.0));
                if a < b {
                    alive.entry(r.to_owned()).or_default().push((a, b));
                }
            }
        }
        Ok(())
    })?;
    let alive_at = |r: &str, i: usize| {
        alive
            .get(r)
            .is_some_and(|spans| spans.iter().any(|(a, b)| (*a..*b).contains(&i)))
    };
    // Per key and bucket: owned, orphaned, total.
    let mut counts: BTreeMap<String, Vec<[i64; 3]>> = BTreeMap::new();
    each_seen(store, buckets, &mut |_, body, a, b| {
        if !filter.is_none_or(|f| f.matches(body)) {
            return;
        }
        let owners = related(body, "ownedBy");
        for key in values_of(dim, body) {
            let cells = counts.entry(key).or_insert_with(|| vec![[0; 3]; n]);
            for (i, cell) in cells.iter_mut().enumerate().take(b).skip(a) {
                cell[2] += 1;
                if owners
                    .iter()
                    .any(|o| o.starts_with("group:") && alive_at(o, i))
                {
                    cell[0] += 1;
                } else if !owners.iter().any(|o| alive_at(o, i)) {
                    cell[1] += 1;
                }
            }
        }
    })?;
    let mut out = Vec::new();
    for (key, cells) in counts {
        let column = |j: usize| cells.iter().map(|c| c[j] as f64).collect::<Vec<f64>>();
        let coverage = cells
            .iter()
            .map(|c| {
                if c[2] == 0 {
                    0.0
                } else {
                    c[0] as f64 / c[2] as f64
                }
            })
            .collect();
        out.push(Series {
            key: key.clone(),
            measure: "owned",
            values: column(0),
        });
        out.push(Series {
            key: key.clone(),
            measure: "orphaned",
            values: column(1),
        });
        out.push(Series {
            key: key.clone(),
            measure: "total",
            values: column(2),
        });
        out.push(Series {
            key,
            measure: "coverage",
            values: coverage,
        });
    }
    Ok(out)
}

/// `changes`: how many changes the feed recorded within each interval, by
/// `dim` (`source`, `kind`: the entity's kind or `location`, `change`: the
/// event type, or `all`).
pub fn changes(
    store: &dyn Store,
    buckets: &[Bucket],
    dim: Dimension,
) -> Result<Vec<Series>, StoreError> {
    let n = buckets.len();
    let starts: Vec<i64> = buckets.iter().map(|b| b.start.timestamp_millis()).collect();
    let last_end = buckets
        .last()
        .map_or(i64::MIN, |b| b.end.timestamp_millis());
    let mut counts: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut err = None;
    store.scan(&[keys::FEED], None, &mut |k, v| {
        let r: FeedRecord = match records::decode(k, v) {
            Ok(r) => r,
            Err(e) => {
                err = Some(e);
                return false;
            }
        };
        let t = r.at.timestamp_millis();
        if t >= last_end || starts.first().is_none_or(|s| t < *s) {
            return true;
        }
        let i = starts.partition_point(|s| *s <= t) - 1;
        let key = match dim {
            Dimension::Source => r.source.to_string(),
            Dimension::Change => r.kind.as_str().to_owned(),
            Dimension::Kind => r
                .entity
                .as_deref()
                .and_then(|e| e.split_once(':'))
                .map_or_else(|| "location".to_owned(), |(k, _)| k.to_owned()),
            _ => "all".to_owned(),
        };
        counts.entry(key).or_insert_with(|| vec![0.0; n])[i] += 1.0;
        true
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    Ok(counts
        .into_iter()
        .map(|(key, values)| Series {
            key,
            measure: "changes",
            values,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::Fold;
    use crate::fold::tests::{component, event};
    use crate::store::MemStore;
    use proto::{EntityEvent, LocationOutcome, ProcessedEntity};

    fn day(d: i64, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, 0, 0).unwrap() + Duration::days(d)
    }

    fn at(mut e: EntityEvent, t: DateTime<Utc>) -> EntityEvent {
        e.observed_at = t;
        e
    }

    fn group(name: &str) -> ProcessedEntity {
        ProcessedEntity {
            entity: serde_json::from_value(serde_json::json!({
                "apiVersion": "backstage.io/v1alpha1", "kind": "Group",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"type": "team", "children": []}
            }))
            .unwrap(),
            relations: vec![],
        }
    }

    fn apply(store: &MemStore, e: &EntityEvent) {
        let mut fold = Fold::new(store);
        fold.apply(e).unwrap();
        store.write(fold.finish().unwrap()).unwrap();
    }

    fn values<'a>(series: &'a [Series], key: &str, measure: &str) -> &'a [f64] {
        &series
            .iter()
            .find(|s| s.key == key && s.measure == measure)
            .unwrap_or_else(|| panic!("no {key}/{measure} in {series:?}"))
            .values
    }

    #[test]
    fn counts_ownership_and_changes_follow_history() {
        let store = MemStore::new();
        let (a, b) = ("file:/org/a.yaml", "file:/org/b.yaml");
        // Day 1: c1 owned by team-a, which exists. Day 3: c2, owned by a
        // group nobody defined. Day 5: c1 goes.
        apply(
            &store,
            &at(
                event(a, 1, vec![component("c1", "team-a", a), group("team-a")]),
                day(1, 12),
            ),
        );
        apply(
            &store,
            &at(event(b, 2, vec![component("c2", "ghost", b)]), day(3, 12)),
        );
        apply(&store, &at(event(a, 1, vec![group("team-a")]), day(5, 12)));
        let days = buckets(day(0, 5), day(6, 5), Interval::Day);
        assert_eq!(days.len(), 7);
        assert_eq!(days[0].start, day(0, 0));

        let by_kind = entities(&store, &days, Dimension::Kind, None).unwrap();
        assert_eq!(
            values(&by_kind, "component", "entities"),
            [0.0, 1.0, 1.0, 2.0, 2.0, 1.0, 1.0]
        );
        assert_eq!(
            values(&by_kind, "group", "entities"),
            [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
        );
        let by_owner = entities(&store, &days, Dimension::Owner, None).unwrap();
        assert_eq!(
            values(&by_owner, "group:default/team-a", "entities")[4],
            1.0
        );
        assert_eq!(values(&by_owner, "group:default/ghost", "entities")[4], 1.0);
        assert_eq!(
            values(&by_owner, NONE, "entities")[4],
            1.0,
            "the group has no owner"
        );
        let filter = EntityFilter::parse(&["kind=component".into()])
            .unwrap()
            .unwrap();
        let own = ownership(&store, &days, Dimension::All, Some(&filter)).unwrap();
        assert_eq!(
            values(&own, "all", "owned"),
            [0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
        );
        assert_eq!(
            values(&own, "all", "orphaned"),
            [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
        );
        assert_eq!(values(&own, "all", "coverage")[3], 0.5);

        let ch = changes(&store, &days, Dimension::Change).unwrap();
        assert_eq!(
            values(&ch, "entity_created", "changes"),
            [0.0, 2.0, 0.0, 1.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(values(&ch, "entity_deleted", "changes")[5], 1.0);
        assert_eq!(values(&ch, "location_created", "changes")[3], 1.0);

        // The location gone: nothing left at the end of day 6.
        let mut gone = event(a, 1, vec![]);
        gone.outcome = LocationOutcome::Removed;
        apply(&store, &at(gone, day(6, 1)));
        let by_kind = entities(&store, &days, Dimension::Kind, None).unwrap();
        assert_eq!(values(&by_kind, "group", "entities")[6], 0.0);
        assert_eq!(values(&by_kind, "group", "entities")[5], 1.0);
    }

    #[test]
    fn buckets_align_to_days_weeks_and_months() {
        let t = Utc.with_ymd_and_hms(2026, 11, 26, 15, 30, 0).unwrap();
        let w = buckets(t, t, Interval::Week);
        assert_eq!(
            w[0].start,
            Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
        );
        let m = buckets(t - Duration::days(60), t, Interval::Month);
        let starts: Vec<u32> = m.iter().map(|b| b.start.month()).collect();
        assert_eq!(starts, [9, 10, 11]);
        assert_eq!(
            m[2].end,
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
        );
        let dec = buckets(
            Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2027, 1, 2, 0, 0, 0).unwrap(),
            Interval::Month,
        );
        assert_eq!(
            dec[0].end,
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(dec.len(), 2);
        assert_eq!(
            buckets(t - Duration::days(5000), t, Interval::Day).len(),
            MAX_BUCKETS
        );
    }
}
